#!/usr/bin/env python3
"""Furnishes a running carehub through its public API for the upgrade fixture, then writes the
fixture's metadata (what tests/suite/upgrade.rs checks after an upgrade).

Run by scripts/make-upgrade-fixture.sh against a `carehub up` of the release under test; only
the standard library is used (the hub's websocket is spoken by a small client below).

Usage:
  upgrade_fixture.py furnish <gateway base URL> <hub host:port> <data dir> <metadata out> <backend>
      creates the state and writes the metadata; the admin account must exist already
      (`carehub admin create-user`), its email and password in UPGRADE_ADMIN_EMAIL and
      UPGRADE_ADMIN_PASSWORD
  upgrade_fixture.py positions <nats monitoring URL> <metadata>
      after carehub stopped, with a nats-server started on its JetStream store: checks that the
      stored consumers stand where they stood while carehub ran, and records them as stored
      (a consumer's `created` as a restarted server reports it, which is what an upgrade sees)
"""

import base64
import datetime
import json
import os
import re
import socket
import struct
import sys
import time
import urllib.error
import urllib.request
import uuid
import zoneinfo

DEADLINE = 60.0
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")

# Test-only passwords: the fixture is public and these accounts exist nowhere else.
DOCTOR = {
    "email": "doctor@upgrade.carehub.test",
    "password": "upgrade-fixture-doctor-1",
    "display_name": "Dr. Dana Upgrade",
}
PATIENT = {
    "email": "patient@upgrade.carehub.test",
    "password": "upgrade-fixture-patient-1",
    "display_name": "Pat Upgrade",
}
PROFILE = {
    "date_of_birth": "1980-02-29",
    "phone": "+49 30 1234567",
    "address": {
        "line1": "Invalidenstr. 1",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
    },
    "emergency_contact": {
        "name": "Sam Upgrade",
        "phone": "+49 30 7654321",
        "relationship": "sister",
    },
}
RECORD = {
    "allergies": [
        {"substance": "penicillin", "reaction": "hives", "severity": "severe"}
    ],
    "conditions": [{"name": "asthma", "since": "2001-05-01"}],
    "medications": [
        {"name": "salbutamol", "dose": "100 µg", "frequency": "as needed"}
    ],
    "blood_type": "AB-",
    "notes": "Carries an inhaler.",
}
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]


class Api:
    def __init__(self, base):
        self.base = base

    def call(self, method, path, token=None, body=None, headers=None):
        """Returns (status, headers, parsed JSON body or None)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                raw = r.read()
                return r.status, r.headers, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw.decode(errors="replace")
            return e.code, e.headers, parsed

    def ok(self, method, path, token=None, body=None, headers=None, want=(200,)):
        status, hdrs, parsed = self.call(method, path, token, body, headers)
        if status not in want:
            sys.exit(f"{method} {path}: {status} {parsed}")
        return hdrs, parsed

    def until(self, what, method, path, token=None, body=None, headers=None, accept=None):
        """Repeats the request until it answers 2xx (and `accept(body)` holds)."""
        give_up = time.monotonic() + DEADLINE
        while True:
            status, hdrs, parsed = self.call(method, path, token, body, headers)
            if 200 <= status < 300 and (accept is None or accept(parsed)):
                return hdrs, parsed
            if time.monotonic() > give_up:
                sys.exit(f"{what}: {method} {path} still {status} {parsed}")
            time.sleep(0.2)

    def login(self, email, password):
        _, s = self.ok(
            "POST",
            "/api/auth/login",
            body={"email": email, "password": password, "refresh_token_in": "body"},
        )
        return s["access_token"], s["user"]


class Ws:
    """A minimal websocket client (RFC 6455): text frames, answers pings."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=20)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                sys.exit("the hub closed the websocket handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            sys.exit(f"websocket handshake refused: {head!r}")

    def _frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def _read(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                sys.exit("the hub closed the websocket")
            out += chunk
        return out

    def send(self, frame):
        self._frame(0x1, json.dumps(frame).encode())

    def recv(self):
        while True:
            b1, b2 = self._read(2)
            opcode, n = b1 & 0x0F, b2 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            mask = self._read(4) if b2 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:
                self._frame(0xA, payload)
            elif opcode == 0x8:
                sys.exit(f"the hub closed the websocket: {payload!r}")
            elif opcode == 0x1:
                return json.loads(payload)

    def until(self, what, accept):
        give_up = time.monotonic() + DEADLINE
        while time.monotonic() < give_up:
            frame = self.recv()
            if frame.get("type") == "error":
                sys.exit(f"{what}: error frame {frame}")
            if accept(frame):
                return frame
        sys.exit(f"{what}: not received")

    def close(self):
        try:
            self._frame(0x8, struct.pack("!H", 1000))
        finally:
            self.sock.close()


def signed_in_ws(hub, token):
    host, port = hub.rsplit(":", 1)
    ws = Ws(host, int(port))
    ws.send({"type": "auth", "token": token})
    ws.until("welcome", lambda f: f["type"] == "welcome")
    return ws


def chat(hub, token, room, body):
    ws = signed_in_ws(hub, token)
    client_id = str(uuid.uuid4())
    ws.send({"type": "chat_send", "room": room, "client_id": client_id, "body": body})
    ack = ws.until(
        "chat_ack", lambda f: f["type"] == "chat_ack" and f["client_id"] == client_id
    )
    ws.close()
    return ack["seq"]


def chat_read(hub, token, room, seq):
    ws = signed_in_ws(hub, token)
    ws.send({"type": "chat_read", "room": room, "seq": seq})
    ws.until("chat_read", lambda f: f["type"] == "chat_read" and f["seq"] == seq)
    ws.close()


def chat_history(hub, token, room):
    ws = signed_in_ws(hub, token)
    ws.send({"type": "chat_history", "room": room, "limit": 200})
    h = ws.until("chat_history", lambda f: f["type"] == "chat_history")
    ws.close()
    return h["messages"]


def monitor_url(data_dir):
    """The monitoring address of the nats-server `carehub up` started (it logs it)."""
    with open(os.path.join(data_dir, "nats-server.log"), encoding="utf-8") as f:
        m = re.search(r"Starting http monitor on (\S+)", f.read())
    if not m:
        sys.exit("the nats-server log names no monitoring address")
    return "http://" + m.group(1)


def jetstream(monitor):
    """The file-backed streams and their durable consumers, as the server's /jsz reports them."""
    url = monitor + "/jsz?accounts=true&streams=true&consumers=true&config=true"
    with urllib.request.urlopen(url, timeout=10) as r:
        jsz = json.load(r)
    streams, consumers = {}, []
    for account in jsz.get("account_details") or []:
        for s in account.get("stream_detail") or []:
            if s["config"].get("storage") != "file":
                continue
            streams[s["name"]] = {
                "messages": s["state"]["messages"],
                "first_seq": s["state"]["first_seq"],
                "last_seq": s["state"]["last_seq"],
            }
            for c in s.get("consumer_detail") or []:
                if not c["config"].get("durable_name"):
                    continue
                consumers.append(
                    {
                        "stream": s["name"],
                        "name": c["name"],
                        "created": c["created"],
                        "filter_subject": c["config"].get("filter_subject", ""),
                        "max_deliver": c["config"].get("max_deliver", -1),
                        "delivered": position(c["delivered"]),
                        "ack_floor": position(c["ack_floor"]),
                        "num_pending": c["num_pending"],
                        "num_ack_pending": c["num_ack_pending"],
                        "num_redelivered": c["num_redelivered"],
                    }
                )
    consumers.sort(key=lambda c: (c["stream"], c["name"]))
    return streams, consumers


def position(p):
    return {"consumer_seq": p["consumer_seq"], "stream_seq": p["stream_seq"]}


def quiet_jetstream(monitor):
    """Waits until every durable consumer has applied everything and nothing moved for 2 s."""
    give_up = time.monotonic() + DEADLINE
    last, since = None, time.monotonic()
    while True:
        streams, consumers = jetstream(monitor)
        settled = all(
            c["num_pending"] == 0 and c["num_ack_pending"] == 0 for c in consumers
        )
        now = (streams, consumers)
        if now != last:
            last, since = now, time.monotonic()
        elif settled and time.monotonic() - since >= 2:
            return streams, consumers
        if time.monotonic() > give_up:
            sys.exit(f"JetStream did not settle: {consumers}")
        time.sleep(0.2)


def mail_files(data_dir):
    mail = os.path.join(data_dir, "mail")
    if not os.path.isdir(mail):
        return []
    return sorted(n for n in os.listdir(mail) if n.endswith(".eml"))


def appointment_window(now):
    """A Monday 09:00–12:00 in Berlin about ten years ahead, so that no reminder of the fixture's
    appointment falls due while the fixture is in use."""
    day = (now + datetime.timedelta(days=3650)).astimezone(BERLIN).date()
    day += datetime.timedelta(days=(7 - day.weekday()) % 7)
    start = datetime.datetime(day.year, day.month, day.day, 9, 0, tzinfo=BERLIN)
    end = start + datetime.timedelta(hours=3)
    accept = start + datetime.timedelta(hours=1)

    def utc(t):
        return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    return utc(start), utc(end), utc(accept)


def positions(monitor, path):
    with open(path, encoding="utf-8") as f:
        metadata = json.load(f)
    streams, consumers = jetstream(monitor)
    if streams != metadata["streams"]:
        sys.exit(f"the stored streams differ from the running ones: {streams}")

    def place(c):
        return {k: v for k, v in c.items() if k != "created"}

    if [place(c) for c in consumers] != [place(c) for c in metadata["consumers"]]:
        sys.exit(f"the stored consumers stand elsewhere than the running ones: {consumers}")
    metadata["consumers"] = consumers
    write(metadata, path)


def write(metadata, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2, ensure_ascii=False, sort_keys=True)
        f.write("\n")


def main():
    if sys.argv[1] == "positions":
        positions(*sys.argv[2:4])
    elif sys.argv[1] == "furnish":
        furnish(*sys.argv[2:7])
    else:
        sys.exit(__doc__)


def furnish(base, hub, data_dir, out, backend):
    api = Api(base)
    monitor = monitor_url(data_dir)
    made_at = datetime.datetime.now(datetime.timezone.utc)
    admin_email = os.environ["UPGRADE_ADMIN_EMAIL"]
    admin_password = os.environ["UPGRADE_ADMIN_PASSWORD"]
    admin_token, admin_user = api.login(admin_email, admin_password)

    # A doctor signs up (pending) and the admin approves them.
    api.ok("POST", "/api/auth/register", body={**DOCTOR, "role": "doctor"}, want=(202,))
    _, doctor_user = api.login(DOCTOR["email"], DOCTOR["password"])
    api.ok("POST", f"/api/admin/users/{doctor_user['id']}/approve", admin_token, {})
    doctor_token, doctor_user = api.login(DOCTOR["email"], DOCTOR["password"])
    api.until("the doctor profile", "GET", "/api/doctors/me/profile", doctor_token)
    api.ok(
        "PUT",
        "/api/doctors/me/profile",
        doctor_token,
        {
            "specialties": ["cardiology"],
            "languages": ["de", "en"],
            "bio": "Sees patients on weekday mornings.",
        },
    )
    _, availability = api.ok("GET", "/api/doctors/me/availability", doctor_token)
    api.ok(
        "PUT",
        "/api/doctors/me/availability",
        doctor_token,
        {
            "expected_version": availability["version"],
            "time_zone": "Europe/Berlin",
            "weekly": [{"weekday": d, "start": "09:00", "end": "17:00"} for d in WEEKDAYS],
            "slot_minutes": 30,
            "auto_accept": False,
        },
    )

    # A patient signs up and fills in the profile and the medical record.
    api.ok("POST", "/api/auth/register", body=PATIENT, want=(202,))
    patient_token, patient_user = api.login(PATIENT["email"], PATIENT["password"])
    hdrs, _ = api.until(
        "the patient profile",
        "GET",
        "/api/patients/me/profile",
        patient_token,
        accept=lambda p: p.get("display_name") == PATIENT["display_name"],
    )
    api.ok("PUT", "/api/patients/me/profile", patient_token, PROFILE, {"If-Match": hdrs["ETag"]})
    hdrs, _ = api.ok("GET", "/api/patients/me/record", patient_token)
    api.ok("PUT", "/api/patients/me/record", patient_token, RECORD, {"If-Match": hdrs["ETag"]})

    # The patient asks the doctor for a morning; the doctor accepts an hour into it.
    window_start, window_end, start = appointment_window(made_at)
    _, appointment = api.until(
        "the appointment request",
        "POST",
        "/api/appointments",
        patient_token,
        {
            "target": {"doctor": doctor_user["id"]},
            "window_start": window_start,
            "window_end": window_end,
            "reason": "a check-up before the upgrade",
        },
        {"Idempotency-Key": str(uuid.uuid4())},
    )
    appointment_id = appointment["id"]
    api.until(
        "the offer",
        "GET",
        "/api/offers",
        doctor_token,
        accept=lambda b: any(o["appointment"]["id"] == appointment_id for o in b["offers"]),
    )
    _, confirmed = api.ok(
        "POST",
        f"/api/appointments/{appointment_id}/accept",
        doctor_token,
        {"start": start},
        {"Idempotency-Key": str(uuid.uuid4())},
    )
    if confirmed["status"] != "confirmed":
        sys.exit(f"the appointment is not confirmed: {confirmed}")

    # They chat in the appointment's room; the patient reads the doctor's answer.
    chat(hub, patient_token, appointment_id, "Hello doctor, see you then.")
    answer = chat(hub, doctor_token, appointment_id, "See you, bring your inhaler.")
    chat_read(hub, patient_token, appointment_id, answer)

    # The notifications the event consumers write: the patient's request and confirmation,
    # the doctor's offer. The patient reads the oldest one.
    _, patient_notes = api.until(
        "the patient's confirmation",
        "GET",
        "/api/notifications",
        patient_token,
        accept=lambda b: any(n["kind"] == "appointment_confirmed" for n in b["notifications"]),
    )
    oldest = patient_notes["notifications"][-1]
    api.ok("POST", f"/api/notifications/{oldest['id']}/read", patient_token, {})

    # Once every consumer applied everything and the mail directory stopped growing, what the
    # API serves is the fixture's state.
    quiet_jetstream(monitor)
    give_up = time.monotonic() + DEADLINE
    while True:
        mails = mail_files(data_dir)
        time.sleep(1)
        if mails and mails == mail_files(data_dir):
            break
        if time.monotonic() > give_up:
            sys.exit("the mail directory did not settle")

    def served(token, path):
        return api.ok("GET", path, token)[1]

    metadata = {
        "release": "5eaba83",
        "backend": backend,
        "made_at": made_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "made_by": "scripts/make-upgrade-fixture.sh",
        "accounts": {
            "admin": {"email": admin_email, "password": admin_password, "id": admin_user["id"]},
            "doctor": {
                "email": DOCTOR["email"],
                "password": DOCTOR["password"],
                "id": doctor_user["id"],
            },
            "patient": {
                "email": PATIENT["email"],
                "password": PATIENT["password"],
                "id": patient_user["id"],
            },
        },
        "served": {
            "me": {
                "admin": served(admin_token, "/api/me"),
                "doctor": served(doctor_token, "/api/me"),
                "patient": served(patient_token, "/api/me"),
            },
            "doctor_profile": served(doctor_token, "/api/doctors/me/profile"),
            "doctor_availability": served(doctor_token, "/api/doctors/me/availability"),
            "patient_profile": served(patient_token, "/api/patients/me/profile"),
            "patient_record": served(patient_token, "/api/patients/me/record"),
            "appointment": served(patient_token, f"/api/appointments/{appointment_id}"),
            "notifications": {
                "admin": served(admin_token, "/api/notifications")["notifications"],
                "doctor": served(doctor_token, "/api/notifications")["notifications"],
                "patient": served(patient_token, "/api/notifications")["notifications"],
            },
            "chat": chat_history(hub, patient_token, appointment_id),
        },
        "appointment_id": appointment_id,
    }
    # Last, where each durable consumer stands (nothing above published an event).
    streams, consumers = quiet_jetstream(monitor)
    metadata["mail_files"] = mail_files(data_dir)
    metadata["streams"] = streams
    metadata["consumers"] = consumers
    metadata["counts"] = {
        "notifications": {k: len(v) for k, v in metadata["served"]["notifications"].items()},
        "chat_messages": len(metadata["served"]["chat"]),
        "mail_files": len(metadata["mail_files"]),
        "stream_messages": {k: v["messages"] for k, v in streams.items()},
        "durable_consumers": len(consumers),
    }
    write(metadata, out)


if __name__ == "__main__":
    main()
