"""Prepares a schemathesis run against a live nobat server (called by .ci/schemathesis).

Logs in as an adult citizen of the bundled scenario, files and pays an application, issues a
staff token, and writes schemathesis.toml: the four tokens (one per security scheme of the
document) and dictionaries of real values (the citizen's form, offices, free slot starts, the
application and its payment) that the generator mixes into the fields of those names, so that
fuzzed requests and the stateful phase's link-following reach past validation into the
booking journey: hold, confirm, receipt, cancel, reschedule, staff steps.

Usage: schemathesis_setup.py BASE_URL ADMIN_TOKEN PLANNER_TOKEN CITIZENS_CSV OUT_TOML
"""

import csv
import datetime
import json
import sys
import urllib.error
import urllib.request


def call(base, method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def form(c):
    return {
        "personal": {
            "national_code": c["national_code"],
            "birth_certificate_serial": c["birth_certificate_serial"],
            "first_name": c["first_name"],
            "last_name": c["last_name"],
            "gender": c["gender"],
            "birth_date": c["birth_date"],
            "nationality": "IR",
            "birth_certificate_has_photo": True,
        },
        "father": {"first_name": "علی", "last_name": c["last_name"]},
        "mother": {"first_name": "مریم", "last_name": "کریمی"},
        "mobile": c["mobile"],
        "postal_code": c["postal_code"],
        "address": f"{c['city']}، خیابان اصلی، پلاک ۱۲",
    }


def ready_applicant(base, citizens):
    """The first adult citizen who can log in, apply and pay: (citizen, token, app, payment)."""
    today = datetime.date.today()
    for c in citizens:
        if (today - datetime.date.fromisoformat(c["birth_date"])).days < 20 * 366:
            continue
        status, session = call(base, "POST", "/v1/sessions", {
            "national_code": c["national_code"],
            "birth_certificate_serial": c["birth_certificate_serial"],
        })
        if status != 201:
            continue
        token = session["token"]
        status, application = call(base, "POST", "/v1/applications",
                                   {"service": "first_issuance", "form": form(c)}, token)
        if status != 201:
            continue
        status, payment = call(base, "POST", "/v1/payments",
                               {"application_id": application["application_id"]}, token)
        if status == 201:
            return c, token, application["application_id"], payment["payment_id"]
    sys.exit("no citizen of the bundled scenario could apply and pay")


def toml_list(values):
    return "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"


def main():
    base, admin, planner, citizens_csv, out = sys.argv[1:6]
    citizens = list(csv.DictReader(open(citizens_csv, encoding="utf-8")))
    c, token, application_id, payment_id = ready_applicant(base, citizens)
    status, offices = call(base, "GET", f"/v1/offices?near={c['lat']},{c['lon']}"
                                        "&service=first_issuance&limit=5")
    assert status == 200 and offices, offices
    office_ids = [o["office_id"] for o in offices]
    starts = [s["start"] for o in offices for s in o["earliest_free"]]
    status, issued = call(base, "POST", f"/v1/admin/offices/{office_ids[0]}/staff-tokens",
                          {"name": "fuzzer"}, admin)
    assert status == 201, issued
    f = form(c)
    dictionaries = {
        "offices": office_ids,
        "starts": starts,
        "applications": [application_id],
        "payments": [payment_id],
        "services": ["first_issuance"],
        "codes": [c["national_code"]],
        "serials": [c["birth_certificate_serial"]],
        "first_names": [c["first_name"]],
        "last_names": [c["last_name"]],
        "genders": [c["gender"]],
        "birth_dates": [c["birth_date"]],
        "nationalities": ["IR"],
        "mobiles": [c["mobile"]],
        "postal_codes": [c["postal_code"]],
        "addresses": [f["address"]],
        "parents": ["علی", "مریم"],
    }
    bindings = {
        "body.office_id": ("offices", 0.8),
        "body.start": ("starts", 0.8),
        "body.application_id": ("applications", 0.6),
        "body.payment_id": ("payments", 0.8),
        "body.service": ("services", 0.6),
        "body.national_code": ("codes", 0.5),
        "body.birth_certificate_serial": ("serials", 0.5),
        "body.form.personal.national_code": ("codes", 0.9),
        "body.form.personal.birth_certificate_serial": ("serials", 0.9),
        "body.form.personal.first_name": ("first_names", 0.9),
        "body.form.personal.last_name": ("last_names", 0.9),
        "body.form.personal.gender": ("genders", 0.9),
        "body.form.personal.birth_date": ("birth_dates", 0.9),
        "body.form.personal.nationality": ("nationalities", 0.9),
        "body.form.father.first_name": ("parents", 0.9),
        "body.form.father.last_name": ("last_names", 0.9),
        "body.form.mother.first_name": ("parents", 0.9),
        "body.form.mother.last_name": ("last_names", 0.9),
        "body.form.mobile": ("mobiles", 0.9),
        "body.form.postal_code": ("postal_codes", 0.9),
        "body.form.address": ("addresses", 0.9),
        "path.office_id": ("offices", 0.5),
        "query.national_code": ("codes", 0.5),
    }
    with open(out, "w", encoding="utf-8") as toml:
        for scheme, bearer in [("applicant", token), ("staff", issued["token"]),
                               ("admin", admin), ("planner", planner)]:
            toml.write(f"[auth.openapi.{scheme}]\nbearer = {json.dumps(bearer)}\n")
        for name, values in dictionaries.items():
            toml.write(f"[dictionaries.{name}]\nvalues = {toml_list(values)}\n")
        toml.write("[parameters]\n")
        for key, (name, probability) in bindings.items():
            toml.write(f'"{key}" = {{ dictionary = "{name}", probability = {probability} }}\n')
    print(f"applicant {c['national_code'][:3]}******{c['national_code'][-1]}, "
          f"{len(office_ids)} offices, {len(starts)} free slots")


if __name__ == "__main__":
    main()
