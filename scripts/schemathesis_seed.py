"""Seeds a fresh carehub instance through its HTTP API for scripts/schemathesis.sh.

Creates, besides the admin the script made with the CLI:
  * a patient;
  * an approved doctor (specialty `cardiology`, weekly hours every day, 30-minute slots,
    instant booking) with one time off period far ahead;
  * a pending doctor (registered, not approved), and a spare pending doctor whose account
    the admin run may approve, reject, disable and enable at will;
  * a group routing `cardiology` to the approved doctor;
  * two confirmed bookings of the patient (one to keep, one for the cancel operation) and
    one open request to the approved doctor, and so a notification for the patient.

Prints `export NAME=value` lines for the shell: a bearer token per role and the ids that
scripts/schemathesis.toml puts into path parameters.

Usage: schemathesis_seed.py BASE_URL ADMIN_TOKEN
"""

import json
import secrets
import shlex
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

BASE, ADMIN = sys.argv[1], sys.argv[2]
DEADLINE_SECS = 30


def call(method, path, token=None, body=None, headers=None, ok=(200, 201, 202, 204)):
    """One request; returns the decoded JSON answer (None when empty), fails on another status."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            status, text = res.status, res.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    if status not in ok:
        raise SystemExit(f"seed: {method} {path} answered {status}: {text}")
    return json.loads(text) if text else None


def until(what, probe):
    """Calls `probe` until it returns something other than None, for at most DEADLINE_SECS."""
    deadline = time.monotonic() + DEADLINE_SECS
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"seed: {what} did not happen within {DEADLINE_SECS} s")
        time.sleep(0.2)


def login(email, password):
    body = {"email": email, "password": password, "refresh_token_in": "body"}
    return call("POST", "/api/auth/login", body=body)["access_token"]


def account(name, role):
    """Registers an account and logs it in; returns (user id, access token, email, password)."""
    email = f"schemathesis-{name}@example.com"
    password = "Sx9!" + secrets.token_hex(16)
    body = {"email": email, "password": password, "display_name": f"Schemathesis {name}"}
    if role:
        body["role"] = role
    call("POST", "/api/auth/register", body=body)
    token = login(email, password)
    return call("GET", "/api/me", token)["id"], token, email, password


def status_of(token, path):
    try:
        call("GET", path, token, ok=(200,))
        return True
    except SystemExit:
        return None


def rfc3339(t):
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


patient_id, patient, _, _ = account("patient", None)
doctor_id, _, doctor_email, doctor_password = account("doctor", "doctor")
pending_id, pending, _, _ = account("pending-doctor", "doctor")
spare_id, _, _, _ = account("spare-doctor", "doctor")

call("POST", f"/api/admin/users/{doctor_id}/approve", ADMIN, body={"reason": "seed"})
# A new session carries the new status.
doctor = login(doctor_email, doctor_password)
until("the approved doctor's profile", lambda: status_of(doctor, f"/api/doctors/{doctor_id}"))
until("the pending doctor's profile", lambda: status_of(pending, "/api/doctors/me/profile"))

call("PUT", "/api/doctors/me/profile", doctor,
     body={"specialties": ["cardiology"], "bio": "Seeded for schemathesis."})
version = call("GET", "/api/doctors/me/availability", doctor)["version"]
weekdays = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
weekly = [{"weekday": d, "start": "06:00", "end": "20:00"} for d in weekdays]
call("PUT", "/api/doctors/me/availability", doctor, body={
    "expected_version": version, "time_zone": "UTC", "weekly": weekly,
    "slot_minutes": 30, "auto_accept": True,
})
now = datetime.now(timezone.utc)
far = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=40)
time_off = call("POST", "/api/doctors/me/time-off", doctor, body={
    "start": rfc3339(far), "end": rfc3339(far + timedelta(days=1)), "reason": "seeded",
})["time_off"]["id"]

group = call("POST", "/api/admin/groups", ADMIN, body={
    "name": "Cardiology", "specialty": "cardiology", "strategy": "broadcast",
    "accept_deadline_secs": 86400, "members": [doctor_id],
})["id"]


def free_slots():
    """The doctor's free slots 2 to 4 days ahead, once the new hours are served."""
    frm, to = rfc3339(now + timedelta(days=2)), rfc3339(now + timedelta(days=4))
    slots = call("GET", f"/api/doctors/{doctor_id}/slots?from={frm}&to={to}", patient)["slots"]
    return slots if len(slots) >= 4 else None


slots = until("free slots", free_slots)


def book(slot):
    body = {"doctor_id": doctor_id, "start": slot["start"], "reason": "seeded booking"}
    key = {"Idempotency-Key": secrets.token_hex(8)}
    deadline = time.monotonic() + DEADLINE_SECS
    while True:
        # The admin service learns of the hours and of instant booking from an event.
        try:
            return call("POST", "/api/appointments/book", patient, body=body, headers=key,
                        ok=(201,))["id"]
        except SystemExit:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


booked = book(slots[0])
to_cancel = book(slots[2])
requested = call("POST", "/api/appointments", patient,
                 headers={"Idempotency-Key": secrets.token_hex(8)}, body={
                     "target": {"doctor": doctor_id},
                     "window_start": rfc3339(now + timedelta(days=5)),
                     "window_end": rfc3339(now + timedelta(days=6)),
                     "reason": "seeded request",
                 })["id"]



def first_notification():
    page = call("GET", "/api/notifications?limit=1", patient)["notifications"]
    return page[0]["id"] if page else None


# The bookings above notify the patient (through the event stream).
notification = until("a notification for the patient", first_notification)

values = {
    "CAREHUB_ST_ADMIN_TOKEN": ADMIN,
    "CAREHUB_ST_PATIENT_TOKEN": patient,
    "CAREHUB_ST_DOCTOR_TOKEN": doctor,
    "CAREHUB_ST_PENDING_DOCTOR_TOKEN": pending,
    "CAREHUB_ST_PATIENT_ID": patient_id,
    "CAREHUB_ST_DOCTOR_ID": doctor_id,
    "CAREHUB_ST_PENDING_DOCTOR_ID": pending_id,
    "CAREHUB_ST_SPARE_USER_ID": spare_id,
    "CAREHUB_ST_TIME_OFF_ID": time_off,
    "CAREHUB_ST_GROUP_ID": group,
    "CAREHUB_ST_BOOKED_ID": booked,
    "CAREHUB_ST_CANCEL_ID": to_cancel,
    "CAREHUB_ST_REQUESTED_ID": requested,
    "CAREHUB_ST_NOTIFICATION_ID": notification,
}
for name, value in values.items():
    print(f"export {name}={shlex.quote(value)}")
