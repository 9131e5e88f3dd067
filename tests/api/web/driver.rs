//! A small W3C WebDriver client over reqwest (already a dependency), driving Debian's
//! `chromedriver` and headless `chromium`. The tests need a dozen commands; a client crate
//! would add a TLS stack and a hundred dependencies for them.
//!
//! When the browser is missing the tests skip with the reason printed, unless
//! `NOBAT_REQUIRE_BROWSER=1` (CI sets it), which turns the skip into a failure.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Chromium and chromedriver, or the reason the browser tests cannot run.
pub fn browser_programs() -> Option<(PathBuf, PathBuf)> {
    let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
    let driver = find_program(&["chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        (c, d) => {
            let missing = [
                c.is_none().then_some("chromium"),
                d.is_none()
                    .then_some("chromedriver (Debian: chromium-driver)"),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" and ");
            if std::env::var("NOBAT_REQUIRE_BROWSER").as_deref() == Ok("1") {
                panic!("NOBAT_REQUIRE_BROWSER=1 but {missing} is not installed");
            }
            eprintln!(
                "skipped: {missing} not installed (apt-get install chromium chromium-driver)"
            );
            None
        }
    }
}

/// A running chromedriver with one browser session; both end when it is dropped.
pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
    /// Where screenshots go.
    pub artefacts: PathBuf,
    shots: usize,
    javascript: bool,
}

pub struct Options {
    pub javascript: bool,
    /// CSS pixels of the viewport's width (a phone: 360).
    pub width: u32,
}

impl Browser {
    /// `None` when the browser is not installed (and not required).
    pub async fn start(options: Options, artefacts: &str) -> Option<Browser> {
        let (chromium, driver_path) = browser_programs()?;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        // Its own process group, so that the browsers it starts go with it (`Drop`).
        let driver = Command::new(driver_path)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        // Ready when /status answers.
        for _ in 0..100 {
            if http.get(format!("{base}/status")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--hide-scrollbars",
        ];
        if !options.javascript {
            // The page's scripts off (the content setting would also stop chromedriver's own).
            args.push("--blink-settings=scriptEnabled=false");
        }
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": args,
                "mobileEmulation": { "deviceMetrics": { "width": options.width, "height": 780, "pixelRatio": 1.0 } },
            }
        }}});
        let artefacts_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/web-artefacts")
            .join(artefacts);
        std::fs::create_dir_all(&artefacts_dir).unwrap();
        let mut browser = Browser {
            driver,
            base,
            http,
            artefacts: artefacts_dir,
            shots: 0,
            javascript: options.javascript,
        };
        let session = browser.command("POST", "/session", caps).await;
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {session}"))
            .to_string();
        browser.base = format!("{}/session/{id}", browser.base);
        Some(browser)
    }

    async fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body),
        };
        let response = request.send().await.expect("webdriver request");
        let value: Value = response.json().await.expect("webdriver answer");
        value["value"].clone()
    }

    async fn checked(&self, method: &str, path: &str, body: Value) -> Value {
        let v = self.command(method, path, body).await;
        if let Some(error) = v.get("error") {
            panic!("webdriver {method} {path}: {error} {}", v["message"]);
        }
        v
    }

    pub async fn goto(&self, url: &str) {
        self.checked("POST", "/url", json!({ "url": url })).await;
    }

    pub async fn url(&self) -> String {
        self.checked("GET", "/url", json!({}))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn find(&self, css: &str) -> String {
        let v = self
            .command(
                "POST",
                "/element",
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        match v[ELEMENT_KEY].as_str() {
            Some(id) => id.to_string(),
            None => panic!(
                "no element {css} on {}: {}\n{}",
                self.url().await,
                v["message"],
                self.text("body").await
            ),
        }
    }

    pub async fn find_all(&self, css: &str) -> Vec<String> {
        let v = self
            .checked(
                "POST",
                "/elements",
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Clicks what does not navigate (a checkbox); without the page's JavaScript, through the
    /// automation's own script.
    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        if self.javascript {
            self.click_element(&id).await;
        } else {
            self.execute("arguments[0].click();", json!([{ ELEMENT_KEY: id }]))
                .await;
        }
    }

    /// Picks a select's option by value.
    pub async fn select(&self, css: &str, value: &str) {
        let id = self.find(css).await;
        self.execute(
            "arguments[0].value = arguments[1];",
            json!([{ ELEMENT_KEY: id }, value]),
        )
        .await;
    }

    /// Clicks what navigates (a link, a form's button) and waits for the new page.
    pub async fn follow(&self, css: &str) {
        let id = self.find(css).await;
        self.follow_element(&id).await;
    }

    pub async fn follow_element(&self, id: &str) {
        let old = self.find("html").await;
        if self.javascript {
            self.click_element(id).await;
        } else {
            // Without the page's JavaScript chromedriver's click never returns; the Enter key
            // on a link or a button does what a click does.
            self.checked(
                "POST",
                &format!("/element/{id}/value"),
                json!({ "text": "\u{E007}" }),
            )
            .await;
        }
        for _ in 0..200 {
            let v = self
                .command(
                    "POST",
                    "/element",
                    json!({ "using": "css selector", "value": "html" }),
                )
                .await;
            if v[ELEMENT_KEY].as_str().is_some_and(|new| new != old) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("clicking did not load a new page: {}", self.url().await);
    }

    pub async fn click_element(&self, id: &str) {
        self.checked("POST", &format!("/element/{id}/click"), json!({}))
            .await;
    }

    /// Clears the field and types `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.checked("POST", &format!("/element/{id}/clear"), json!({}))
            .await;
        self.checked(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// The element's text; empty when there is none. A page that reloads itself (a running
    /// job's) may replace the element between finding and reading it: then it is found again.
    pub async fn text(&self, css: &str) -> String {
        for _ in 0..5 {
            let v = self
                .command(
                    "POST",
                    "/element",
                    json!({ "using": "css selector", "value": css }),
                )
                .await;
            let Some(id) = v[ELEMENT_KEY].as_str() else {
                return String::new();
            };
            let text = self
                .command("GET", &format!("/element/{id}/text"), json!({}))
                .await;
            match text.as_str() {
                Some(t) => return t.to_string(),
                // Chromium says so as a stale reference, or (156) as an inspector error about
                // a node no longer in the document.
                None if text["error"] == "stale element reference"
                    || text["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("does not belong to the document")) =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
                None => panic!("webdriver text of {css}: {text}"),
            }
        }
        panic!("{css} kept going stale")
    }

    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let id = self.find(css).await;
        self.checked("GET", &format!("/element/{id}/attribute/{name}"), json!({}))
            .await
            .as_str()
            .map(str::to_string)
    }

    /// Runs a DevTools command (chromedriver's `goog/cdp/execute`).
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.checked(
            "POST",
            "/goog/cdp/execute",
            json!({ "cmd": cmd, "params": params }),
        )
        .await
    }

    /// A file input's file, by path.
    pub async fn upload(&self, css: &str, path: &str) {
        let id = self.find(css).await;
        self.checked(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": path }),
        )
        .await;
    }

    pub async fn property(&self, css: &str, name: &str) -> String {
        let id = self.find(css).await;
        self.checked("GET", &format!("/element/{id}/property/{name}"), json!({}))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn displayed(&self, css: &str) -> bool {
        let id = self.find(css).await;
        self.checked("GET", &format!("/element/{id}/displayed"), json!({}))
            .await
            .as_bool()
            .unwrap_or(false)
    }

    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.checked(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    pub async fn execute_async(&self, script: &str) -> Value {
        self.checked(
            "POST",
            "/execute/async",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// Saves a PNG of the viewport as `NN-name.png` in the artefacts directory.
    pub async fn screenshot(&mut self, name: &str) {
        let v = self.checked("GET", "/screenshot", json!({})).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        self.shots += 1;
        std::fs::write(
            self.artefacts.join(format!("{:02}-{name}.png", self.shots)),
            png,
        )
        .expect("write screenshot");
    }

    pub async fn quit(self) {
        self.command("DELETE", "", json!({})).await;
    }
}

impl Drop for Browser {
    /// Ends chromedriver and the browser it started (one process group), even after a panic.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
