"""Input records for specification tests: a small site with one permit, written the way the field protocols send them.

`RecordWriter` stamps topic offsets; `hot_work_site` builds the tables of a
healthy hot-work permit (zone PR-1, welder WELD-5 on PLC-3, detector GAS-07,
isolation V-101, workers W1 and W2, guardian G1, approver A1) and `healthy_second`
gives one second of telemetry that keeps every precondition true.
"""

from __future__ import annotations

import datetime

import msgspec

from interlock.site import Output, Site
from schemas.envelope import Record

T0 = 1_795_658_400_000  # 2026-11-26 10:00:00 +08:00
SECOND = 1000

_encode = msgspec.json.encode


class RecordWriter:
    """Builds `Record`s with per-topic offsets."""

    def __init__(self) -> None:
        self.offsets: dict[str, int] = {}

    def record(self, topic: str, key: str | None, payload: object, ts: int) -> Record:
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        body = None if payload is None else (payload if isinstance(payload, (str, bytes)) else _encode(payload).decode())
        return Record(topic, 0, offset, ts, key, body)


def iso_ms(ts: int) -> str:
    moment = datetime.datetime.fromtimestamp(ts / 1000, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts % 1000:03d}Z"


def gas_v2(dev: str, ts: int, seq: int, r=(20.9, 0.0, 0.0, 1.0), alm: int = 0, fw: str = "2.3.1") -> dict:
    return {"dev": dev, "fw": fw, "ts": ts, "seq": seq, "r": list(r), "alm": alm}


def gas_v3(dev: str, ts: int, seq: int, r=None, st: str = "ok", bump: int | None = None, fw: str = "3.0.0") -> dict:
    channels = r if r is not None else {"o2": 20.9, "lel": 0.0, "h2s": 0.0, "co": 1.0}
    return {"dev": dev, "fw": fw, "ts": ts, "seq": seq, "r": channels, "st": st, "bump": bump if bump is not None else ts - 3_600_000}


def anchorline(tag: str, ts: int, x: float, y: float, z: float = 1.2, q: float = 0.9) -> dict:
    return {"tag": tag, "ts": iso_ms(ts), "pos": [x, y, z], "q": q}


def qubit(ts: int, *tags: tuple[str, float, float, float] | str) -> list:
    items = []
    for tag in tags:
        if isinstance(tag, str):
            items.append({"tagId": tag, "timestamp": ts / 1000, "success": False})
        else:
            name, x, y, z = tag
            items.append({"tagId": name, "timestamp": ts / 1000, "success": True,
                          "data": {"coordinates": {"x": x, "y": y, "z": z}}})
    return items


def harness_v1(dev: str, ts: int, seq: int, hook: str = "clipped", h: float = 5.0, fw: str = "1.4.2") -> dict:
    return {"dev": dev, "fw": fw, "ts": ts, "seq": seq, "hook": hook, "h": h, "bat": 80}


def harness_v2(dev: str, ts: int, seq: int, hooks=(1, 0), h: float = 5.0, fw: str = "2.0.1") -> dict:
    return {"dev": dev, "fw": fw, "ts": ts, "seq": seq, "hooks": list(hooks), "h": h, "bat": 80}


def plc_state(plc: str, ts: int, seq: int, tags: dict[str, bool]) -> dict:
    return {"plc": plc, "ts": ts, "seq": seq, "tags": tags}


def qualification(worker: str, cert_type: str = "welding", expires: str = "2028-06-30", status: str = "valid",
                  review_due: str | None = "2028-01-31", medical: str | None = "2027-12-31") -> dict:
    cert = {"no": f"C-{worker}", "type": cert_type, "issuer": "应急管理局", "province": "31", "issued": "2024-01-01",
            "expires": expires, "status": status}
    if review_due is not None:
        cert["review_due"] = review_due
    row = {"worker": worker, "name": worker, "employer": "C-01", "certs": [cert]}
    if medical is not None:
        row["medical_valid_until"] = medical
    return row


def hot_work_permit(rev: int = 1, state: str = "approved", **changes) -> dict:
    permit = {
        "permit": "HW-1", "rev": rev, "type": "hot_work", "grade": "1", "zone": "PR-1", "state": state,
        "valid_from": T0 - 3_600_000, "valid_to": T0 + 6 * 3_600_000,
        "workers": ["W1", "W2"], "guardian": "G1", "approver": "A1",
        "equipment": ["WELD-5"], "isolations": ["V-101"], "ventilation": [], "detectors": ["GAS-07"], "harnesses": [],
        "signatures": {"applicant": "W1", "guardian": "G1", "approver": "A1", "supervisor": "S1"},
    }
    permit.update(changes)
    return permit


PR1 = {"zone": "PR-1", "name": "1号管廊", "polygon": [[0, 0], [30, 0], [30, 10], [0, 10]], "z": [0, 15], "risk": "II", "forbid": []}
WORKER_SPOTS = {"W1": (10.0, 5.0), "W2": (12.0, 5.0), "G1": (5.0, 5.0)}
OUTSIDE = (100.0, 100.0)


class HotWorkSite:
    """A site with permit HW-1 and the telemetry that keeps it healthy; tests change one thing and watch the decision."""

    def __init__(self, site: Site | None = None) -> None:
        self.site = site or Site()
        self.writer = RecordWriter()
        self.seq: dict[str, int] = {}
        self.now = T0
        self.spots = dict(WORKER_SPOTS)
        self.outputs: list[Output] = []
        self.last_plc: int | None = None

    def send(self, topic: str, key: str | None, payload: object, ts: int | None = None) -> list[Output]:
        record = self.writer.record(topic, key, payload, self.now if ts is None else ts)
        out = self.site.process(record)
        self.outputs.extend(out)
        return out

    def advance(self) -> list[Output]:
        """What falls due by now without a record (timers, the risk tick), as a live run's clock fires it."""
        out = self.site.advance(self.now)
        self.outputs.extend(out)
        return out

    def next_seq(self, device: str) -> int:
        self.seq[device] = (self.seq.get(device, -1) + 1) % 65536
        return self.seq[device]

    def tables(self, permit: dict | None = None) -> None:
        for row in (
            {"device": "GAS-07", "family": "gas", "model": "GD-4", "firmware": "2.3.1", "zone": "PR-1"},
            {"device": "T-W1", "family": "uwb_tag", "vendor": "anchorline", "worker": "W1"},
            {"device": "T-W2", "family": "uwb_tag", "vendor": "anchorline", "worker": "W2"},
            {"device": "T-G1", "family": "uwb_tag", "vendor": "anchorline", "worker": "G1"},
            {"device": "PLC-3", "family": "plc", "equipment": ["WELD-5", "V-101"],
             "modbus": {"host": "127.0.0.1", "port": 5020, "unit": 1, "enable_coils": {"WELD-5": 0}, "watchdog_register": 100}},
        ):
            self.send("cmdb.devices", row["device"], row)
        self.send("gis.zones", "PR-1", PR1)
        for worker in ("W1", "W2"):
            self.send("hr.qualifications", worker, qualification(worker))
        self.send("ptw.permits", "HW-1", permit or hot_work_permit())

    def gas(self, payload: dict | None = None, ts: int | None = None) -> list[Output]:
        ts = self.now if ts is None else ts
        return self.send("gas.readings", "GAS-07", payload or gas_v2("GAS-07", ts - 20, self.next_seq("GAS-07")), ts)

    def fix(self, worker: str, x: float, y: float, z: float = 1.2, q: float = 0.9) -> list[Output]:
        return self.send("rtls.position", f"T-{worker}", anchorline(f"T-{worker}", self.now - 30, x, y, z, q))

    def plc(self, tags: dict[str, bool] | None = None) -> list[Output]:
        tags = tags if tags is not None else {"V-101.isolated": True, "WELD-5.power": True}
        return self.send("plc.state", "PLC-3", plc_state("PLC-3", self.now - 10, self.next_seq("PLC-3"), tags))

    def healthy_second(self, skip: tuple[str, ...] = ()) -> None:
        """One second of site telemetry: gas, every worker's fix, and the PLC state every 5 s."""
        if "gas" not in skip:
            self.gas()
        for worker, (x, y) in self.spots.items():
            if worker not in skip:
                self.fix(worker, x, y)
        if "plc" not in skip and (self.last_plc is None or self.now - self.last_plc >= 5 * SECOND):
            self.plc()
            self.last_plc = self.now

    def run(self, seconds: int, skip: tuple[str, ...] = ()) -> None:
        for _ in range(seconds):
            self.healthy_second(skip)
            self.now += SECOND

    def activate(self, rev: int = 2, **changes) -> list[Output]:
        return self.send("ptw.permits", "HW-1", hot_work_permit(rev=rev, state="active", **changes))

    def started(self, warmup: int = 6) -> "HotWorkSite":
        """Tables, a few healthy seconds (the gas pre-test), then the permit goes active and is enabled."""
        self.tables()
        self.run(warmup)
        self.activate()
        return self


COMMANDS = "interlock.commands"
FAULTS = "interlock.faults"


def decoded(site: HotWorkSite, topic: str, since: int = 0) -> list[dict]:
    """The outputs of one topic a script has produced since output number `since`, as JSON objects."""
    return [msgspec.json.decode(o.value) for o in site.outputs[since:] if o.topic == topic]


def commands(site: HotWorkSite, kind: str | None = None, since: int = 0) -> list[dict]:
    return [c for c in decoded(site, COMMANDS, since) if kind is None or c["kind"] == kind]


def faults(site: HotWorkSite, code: str | None = None, state: str | None = None, since: int = 0) -> list[dict]:
    return [f for f in decoded(site, FAULTS, since)
            if (code is None or f["code"] == code) and (state is None or f["state"] == state)]


def codes(command: dict) -> list[str]:
    return [reason["code"] for reason in command["reasons"]]
