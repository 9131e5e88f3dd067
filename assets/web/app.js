// Enhancements only: every page works without this script.
(function () {
  "use strict";
  // The hold's countdown: <time data-countdown="seconds left by the server's clock">.
  document.querySelectorAll("[data-countdown]").forEach(function (el) {
    var left0 = parseInt(el.getAttribute("data-countdown"), 10);
    if (isNaN(left0)) return;
    var end = Date.now() + left0 * 1000;
    var fa = document.documentElement.lang === "fa";
    var digits = function (s) {
      return fa ? s.replace(/[0-9]/g, function (d) { return "۰۱۲۳۴۵۶۷۸۹"[d]; }) : s;
    };
    var tick = function () {
      var left = Math.max(0, Math.round((end - Date.now()) / 1000));
      var m = Math.floor(left / 60), s = left % 60;
      el.textContent = digits(m + ":" + (s < 10 ? "0" : "") + s);
      if (left > 0) setTimeout(tick, 1000);
    };
    tick();
  });
  // "Near me": fills the search's `near` from the browser's position, when the person allows,
  // rounded to 0.01 degrees (about a kilometre): enough to sort offices, and the query string
  // does not carry where the person is to the metre.
  document.querySelectorAll("[data-near]").forEach(function (button) {
    if (!navigator.geolocation) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.geolocation.getCurrentPosition(function (pos) {
        var form = button.form;
        form.querySelector("[name=near]").value =
          pos.coords.latitude.toFixed(2) + "," + pos.coords.longitude.toFixed(2);
        form.submit();
      });
    });
  });
  // The planner's scenario upload: the file's text goes into the form's text box.
  document.querySelectorAll("[data-scenario-file]").forEach(function (box) {
    box.hidden = false;
    box.querySelector("input[type=file]").addEventListener("change", function (e) {
      var file = e.target.files[0];
      if (!file) return;
      file.text().then(function (text) { box.closest("form").querySelector("[name=toml]").value = text; });
    });
  });
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });
})();
