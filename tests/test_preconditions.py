"""Specification: the preconditions of a permit (protocols §1-§8 and the interlock rules).

A permit is ENABLEd only while it is active and every precondition holds; any
precondition that fails stops it at once. Each test changes one thing on an
otherwise healthy site and states what the interlock must decide.
"""

from __future__ import annotations

import datetime

import pytest

from site_records import (
    codes,
    commands,
    faults,
    OUTSIDE,
    PR1,
    SECOND,
    T0,
    HotWorkSite,
    gas_v2,
    gas_v3,
    harness_v1,
    harness_v2,
    hot_work_permit,
    iso_ms,
    qualification,
)

HOUR = 3_600_000
DAY = 24 * HOUR
CST = datetime.timezone(datetime.timedelta(hours=8))
TODAY = datetime.datetime.fromtimestamp(T0 / 1000, CST).date()  # the site date at T0


def day(offset: int) -> str:
    """The site calendar date `offset` days after T0's, as HR writes it."""
    return (TODAY + datetime.timedelta(days=offset)).isoformat()


TK3 = {
    "zone": "TK-3", "name": "3号储罐区", "polygon": [[0, 0], [20, 0], [20, 15], [0, 15]], "z": [0, 12], "risk": "I",
    "forbid": ["hot_work"], "entrance": {"polygon": [[20, 5], [23, 5], [23, 8], [20, 8]]},
}
IN_TANK = {"W1": (10.0, 5.0), "W2": (12.0, 5.0), "G1": (21.5, 6.5)}  # G1 stands in the entrance area
PLC_ROW = {
    "device": "PLC-3", "family": "plc", "equipment": ["WELD-5", "V-101", "FAN-2", "HOIST-1", "PANEL-4"],
    "modbus": {"host": "127.0.0.1", "port": 5020, "unit": 1, "enable_coils": {"WELD-5": 0}, "watchdog_register": 100},
}


# ---------------------------------------------------------------------------------------------- builders


def site_ms(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> int:
    """ms since the epoch of a wall-clock time on site (UTC+8)."""
    return int(datetime.datetime(year, month, day, hour, minute, second, tzinfo=CST).timestamp() * 1000)


def permit_row(permit: str, work_type: str, zone: str, **changes) -> dict:
    row = hot_work_permit(permit=permit, type=work_type, zone=zone)
    row.update(changes)
    return row


def confined_permit(**changes) -> dict:
    return permit_row("CS-1", "confined_space", "TK-3", equipment=["FAN-2"], isolations=["V-101"],
                      ventilation=["FAN-2"], **changes)


def height_permit(**changes) -> dict:
    return permit_row("HT-1", "height", "PR-1", workers=["W1"], equipment=["HOIST-1"], isolations=[], detectors=[],
                      harnesses=["HB-33"], **changes)


def electric_permit(**changes) -> dict:
    return permit_row("TE-1", "temp_electric", "PR-1", workers=["W1"], equipment=["PANEL-4"], isolations=[],
                      detectors=[], **changes)


class Plant(HotWorkSite):
    """`HotWorkSite` for any permit type: its own permit row, zone, crew certificates, harnesses and PLC tags.

    Every person in `spots` wears an Anchorline tag `T-<person>`; harness reports are
    `{"hook": ..., "h": ...}` (SH-2 1.x) or `{"hooks": [...], "h": ...}` (SH-2 2.x)."""

    def __init__(self, permit: dict, zone: dict = PR1, spots: dict | None = None, certs: dict | None = None,
                 harnesses: dict | None = None, harness_fw: str = "1.4.2", plc_tags: dict | None = None) -> None:
        super().__init__()
        self.permit = permit
        self.zone = zone
        self.spots = dict(spots if spots is not None else {"W1": (10.0, 5.0), "G1": (5.0, 5.0)})
        self.certs = certs if certs is not None else {"W1": "welding"}
        self.harness_state = {dev: dict(state) for dev, state in (harnesses or {}).items()}
        self.harness_fw = harness_fw
        self.plc_tags = plc_tags if plc_tags is not None else {"V-101.isolated": True, "FAN-2.running": True}

    def tables(self, permit: dict | None = None) -> None:
        self.send("cmdb.devices", "GAS-07", {"device": "GAS-07", "family": "gas", "model": "GD-4", "firmware": "2.3.1"})
        self.send("cmdb.devices", "PLC-3", PLC_ROW)
        for person in self.spots:
            self.register_tag(person)
        for dev in self.harness_state:
            self.send("cmdb.devices", dev, {"device": dev, "family": "harness", "model": "SH-2",
                                            "firmware": self.harness_fw, "worker": "W1"})
        self.send("gis.zones", self.zone["zone"], self.zone)
        for worker, cert in self.certs.items():
            self.send("hr.qualifications", worker, qualification(worker, cert))
        self.send("ptw.permits", self.permit["permit"], permit or self.permit)

    def register_tag(self, person: str) -> None:
        self.send("cmdb.devices", f"T-{person}",
                  {"device": f"T-{person}", "family": "uwb_tag", "vendor": "anchorline", "worker": person})

    def plc(self, tags: dict | None = None):
        return super().plc(self.plc_tags if tags is None else tags)

    def harness(self, dev: str, **state):
        seq = self.next_seq(dev)
        if "hooks" in state:
            payload = harness_v2(dev, self.now - 20, seq, fw=self.harness_fw, **state)
        else:
            payload = harness_v1(dev, self.now - 20, seq, fw=self.harness_fw, **state)
        return self.send("harness.status", dev, payload)

    def healthy_second(self, skip: tuple[str, ...] = ()) -> None:
        super().healthy_second(skip)
        for dev, state in self.harness_state.items():
            if dev not in skip:
                self.harness(dev, **state)

    def activate(self, rev: int = 2, **changes):
        row = dict(self.permit, rev=rev, state="active")
        row.update(changes)
        return self.send("ptw.permits", row["permit"], row)




def reading(site: HotWorkSite, r=(20.9, 0.0, 0.0, 1.0), alm: int = 0):
    """One GD-4 2.x reading from GAS-07 now, with the next sequence number."""
    return site.gas(gas_v2("GAS-07", site.now - 20, site.next_seq("GAS-07"), r=r, alm=alm))


def reading_v3(site: HotWorkSite, **fields):
    return site.gas(gas_v3("GAS-07", site.now - 20, site.next_seq("GAS-07"), **fields))


def approve_gd4_3x(site: HotWorkSite) -> None:
    """The CMDB approves firmware 3.0.0 for GAS-07 (the 3.x shape is then the expected one)."""
    site.send("cmdb.devices", "GAS-07", {"device": "GAS-07", "family": "gas", "model": "GD-4", "firmware": "3.0.0"})


def started_with(permit: dict, **site_args) -> HotWorkSite:
    """A hot-work site whose permit record (rev 1, approved) is `permit`, after the usual 6 healthy seconds,
    then activated with the same changes."""
    s = HotWorkSite(**site_args)
    s.tables(permit)
    s.run(6)
    changes = {k: v for k, v in permit.items() if k not in ("rev", "state")}
    s.send("ptw.permits", "HW-1", dict(changes, rev=2, state="active"))
    return s


def hot_work_with(**changes) -> HotWorkSite:
    return started_with(hot_work_permit(**changes))


def assert_enabled(site: HotWorkSite, since: int = 0) -> dict:
    enables = commands(site, "ENABLE", since)
    assert enables, f"expected an ENABLE, got {[(c['kind'], codes(c)) for c in commands(site, since=since)]}"
    assert not commands(site, "HARD_STOP", since)
    return enables[-1]


def assert_stopped_by(site: HotWorkSite, code: str, since: int = 0) -> dict:
    """The first HARD_STOP since `since` names `code`, resting on an emitted CRITICAL fault of that code."""
    stops = commands(site, "HARD_STOP", since)
    assert stops, f"expected a HARD_STOP for {code}, got {[(c['kind'], codes(c)) for c in commands(site, since=since)]}"
    stop = next((c for c in stops if code in codes(c)), None)
    assert stop is not None, f"no HARD_STOP names {code}: {[codes(c) for c in stops]}"
    reason = next(r for r in stop["reasons"] if r["code"] == code)
    emitted = {f["id"]: f for f in faults(site)}
    assert reason["fault"] in emitted, f"{code} rests on no emitted fault"
    assert emitted[reason["fault"]]["code"] == code
    assert any(f["id"] == reason["fault"] and f["grade"] == "CRITICAL" for f in faults(site))
    return stop


def assert_not_enabled_because(site: HotWorkSite, code: str) -> dict:
    assert not commands(site, "ENABLE"), "the permit must not be enabled"
    return assert_stopped_by(site, code)


# ---------------------------------------------------------------------------------------------- the healthy case


def test_an_active_permit_with_every_precondition_met_is_enabled():
    s = HotWorkSite().started()
    (enable,) = commands(s)
    assert enable["kind"] == "ENABLE"
    assert enable["permit"] == "HW-1"
    assert enable["targets"] == ["WELD-5"]
    assert codes(enable) == ["ALL_PRECONDITIONS_MET"]
    assert enable["reasons"][0]["fault"] is None
    assert not faults(s)


def test_an_approved_permit_is_never_enabled_however_healthy_the_site():
    s = HotWorkSite()
    s.tables()
    s.run(60)
    assert not commands(s)


# ---------------------------------------------------------------------------------------------- the permit record


def test_a_permit_before_its_valid_from_is_not_enabled():
    s = hot_work_with(valid_from=T0 + HOUR, valid_to=T0 + 2 * HOUR)
    stop = assert_not_enabled_because(s, "PERMIT_OUTSIDE_VALIDITY")
    assert stop["latched"] is False


def test_a_permit_is_enabled_by_the_clock_when_its_validity_begins():
    s = hot_work_with(valid_from=T0 + 10 * SECOND, valid_to=T0 + 2 * HOUR)
    assert not commands(s, "ENABLE")
    s.run(6)
    enable = assert_enabled_after_refusal(s)
    assert enable["ts"] == T0 + 10 * SECOND
    assert enable["trigger"] is None


def assert_enabled_after_refusal(s: HotWorkSite) -> dict:
    (enable,) = commands(s, "ENABLE")
    assert codes(enable) == ["ALL_PRECONDITIONS_MET"]
    return enable


def test_a_permit_past_its_valid_to_is_stopped_by_the_clock():
    s = hot_work_with(valid_from=T0 - HOUR, valid_to=T0 + 10 * SECOND)
    assert_enabled(s)
    s.run(6)
    stop = assert_stopped_by(s, "PERMIT_OUTSIDE_VALIDITY")
    assert stop["ts"] == T0 + 10 * SECOND + 1
    assert stop["trigger"] is None
    assert stop["latched"] is True


@pytest.mark.parametrize(("grade", "hours"), [("1", 8), ("special", 8), ("2", 72)])
def test_a_hot_work_window_of_exactly_the_gb_30871_maximum_is_allowed(grade, hours):
    s = hot_work_with(grade=grade, valid_from=T0 - HOUR, valid_to=T0 - HOUR + hours * HOUR)
    assert_enabled(s)


@pytest.mark.parametrize(("grade", "hours"), [("1", 8), ("special", 8), ("2", 72)])
def test_a_hot_work_window_longer_than_the_gb_30871_maximum_is_refused(grade, hours):
    s = hot_work_with(grade=grade, valid_from=T0 - HOUR, valid_to=T0 - HOUR + hours * HOUR + 1)
    assert_not_enabled_because(s, "PERMIT_WINDOW_TOO_LONG")


def test_a_hot_work_grade_the_site_does_not_know_is_refused():
    s = hot_work_with(grade="3")
    assert_not_enabled_because(s, "PERMIT_GRADE_UNKNOWN")


@pytest.mark.parametrize("role", ["applicant", "guardian", "approver", "supervisor"])
def test_a_permit_missing_one_of_the_four_signatures_is_refused(role):
    signatures = {"applicant": "W1", "guardian": "G1", "approver": "A1", "supervisor": "S1"}
    del signatures[role]
    s = hot_work_with(signatures=signatures)
    stop = assert_not_enabled_because(s, "PERMIT_SIGNATURE_MISSING")
    assert role in stop["reasons"][0]["detail"]


def test_a_guardian_signature_by_someone_other_than_the_guardian_counts_as_missing():
    s = hot_work_with(signatures={"applicant": "W1", "guardian": "W2", "approver": "A1", "supervisor": "S1"})
    assert_not_enabled_because(s, "PERMIT_SIGNATURE_MISSING")


def test_an_approver_who_also_signed_as_applicant_is_refused():
    s = hot_work_with(signatures={"applicant": "A1", "guardian": "G1", "approver": "A1", "supervisor": "S1"})
    assert_not_enabled_because(s, "PERMIT_APPROVER_IS_APPLICANT")


def test_a_guardian_who_is_also_a_worker_is_refused():
    s = hot_work_with(workers=["W1", "W2", "G1"])
    assert_not_enabled_because(s, "PERMIT_GUARDIAN_IS_WORKER")


def test_a_zone_that_forbids_the_work_type_refuses_the_permit():
    s = hot_work_with()
    mark = len(s.outputs)
    s.send("gis.zones", "PR-1", dict(PR1, forbid=["hot_work"]))
    stop = assert_stopped_by(s, "ZONE_FORBIDS_WORK_TYPE", since=mark)
    assert stop["trigger"]["topic"] == "gis.zones"


def test_a_permit_whose_zone_has_no_gis_row_is_refused():
    s = hot_work_with(zone="PR-9")
    assert_not_enabled_because(s, "ZONE_UNKNOWN")


def test_a_hot_work_permit_listing_no_gas_detector_is_refused():
    s = hot_work_with(detectors=[])
    assert_not_enabled_because(s, "GAS_DETECTOR_NOT_LISTED")


def test_a_confined_space_permit_listing_no_gas_detector_is_refused():
    s = Plant(confined_permit(detectors=[]), TK3, IN_TANK, {"W1": "confined", "W2": "confined"}).started()
    assert_not_enabled_because(s, "GAS_DETECTOR_NOT_LISTED")


# ---------------------------------------------------------------------------------------------- the guardian


def test_a_guardian_never_located_in_the_zone_prevents_start():
    s = HotWorkSite()
    s.spots["G1"] = OUTSIDE
    s.started()
    stop = assert_not_enabled_because(s, "GUARDIAN_ABSENT")
    assert stop["latched"] is False


def test_guardian_absent_for_29_s_keeps_the_permit_running():
    s = HotWorkSite().started()  # G1 last located at T0 + 5 s
    s.run(29, skip=("G1",))  # up to T0 + 34 s: 29 s without the guardian
    assert not commands(s, "HARD_STOP")


def test_guardian_absent_for_exactly_30_s_keeps_the_permit_running():
    s = HotWorkSite().started()
    s.run(30, skip=("G1",))  # the last record is exactly 30 s after the guardian's last fix
    assert not commands(s, "HARD_STOP")


def test_guardian_absent_for_more_than_30_s_stops_the_permit():
    s = HotWorkSite().started()
    s.run(31, skip=("G1",))
    stop = assert_stopped_by(s, "GUARDIAN_ABSENT")
    assert stop["ts"] == T0 + 5 * SECOND + 30 * SECOND + 1
    assert stop["trigger"] is None  # a silence: the clock decided
    assert stop["latched"] is True
    assert stop["targets"] == ["WELD-5"]


def test_a_guardian_who_walks_out_of_the_zone_is_absent_30_s_after_the_last_fix_inside():
    s = HotWorkSite().started()
    s.spots["G1"] = OUTSIDE  # keeps reporting, but from outside
    s.run(31)
    stop = assert_stopped_by(s, "GUARDIAN_ABSENT")
    assert stop["ts"] == T0 + 5 * SECOND + 30 * SECOND + 1


@pytest.mark.parametrize("q", [0.49, 0.2])
def test_a_guardian_fix_of_quality_below_0_5_is_not_presence(q):
    s = HotWorkSite().started()
    for _ in range(31):
        s.fix("G1", 5.0, 5.0, q=q)
        s.run(1, skip=("G1",))
    assert_stopped_by(s, "GUARDIAN_ABSENT")


def test_a_guardian_fix_of_quality_exactly_0_5_is_presence():
    s = HotWorkSite().started()
    for _ in range(40):
        s.fix("G1", 5.0, 5.0, q=0.5)
        s.run(1, skip=("G1",))
    assert not commands(s, "HARD_STOP")


def test_a_confined_space_guardian_standing_at_the_entrance_lets_work_start():
    s = Plant(confined_permit(), TK3, IN_TANK, {"W1": "confined", "W2": "confined"}).started()
    assert_enabled(s)


def test_a_confined_space_guardian_inside_the_space_instead_of_at_its_entrance_is_absent():
    spots = dict(IN_TANK, G1=(15.0, 5.0))
    s = Plant(confined_permit(), TK3, spots, {"W1": "confined", "W2": "confined"}).started()
    assert_not_enabled_because(s, "GUARDIAN_ABSENT")


def test_a_confined_space_without_an_entrance_area_cannot_locate_its_guardian():
    zone = {k: v for k, v in TK3.items() if k != "entrance"}
    s = Plant(confined_permit(), zone, IN_TANK, {"W1": "confined", "W2": "confined"}).started()
    assert_not_enabled_because(s, "GUARDIAN_ABSENT")


def test_a_revision_naming_a_guardian_who_has_been_away_over_30_s_stops_the_permit_at_once():
    s = HotWorkSite()
    s.spots["G2"] = OUTSIDE
    s.send("cmdb.devices", "T-G2", {"device": "T-G2", "family": "uwb_tag", "vendor": "anchorline", "worker": "G2"})
    s.started()
    s.run(31)  # G2 has been located outside PR-1 all along
    s.spots["G1"] = OUTSIDE
    s.run(1)  # G1 steps out, handing over to G2
    mark = len(s.outputs)
    s.activate(rev=3, guardian="G2", signatures={"applicant": "W1", "guardian": "G2", "approver": "A1", "supervisor": "S1"})
    stop = assert_stopped_by(s, "GUARDIAN_ABSENT", since=mark)
    assert stop["trigger"]["topic"] == "ptw.permits"


# ---------------------------------------------------------------------------------------------- people inside the zone


def test_a_person_not_on_the_permit_entering_the_zone_stops_it_at_once():
    s = HotWorkSite()
    s.spots["X9"] = OUTSIDE
    s.send("cmdb.devices", "T-X9", {"device": "T-X9", "family": "uwb_tag", "vendor": "anchorline", "worker": "X9"})
    s.started()
    s.run(3)
    mark = len(s.outputs)
    s.fix("X9", 20.0, 5.0)
    stop = assert_stopped_by(s, "UNAUTHORISED_ENTRANT", since=mark)
    assert stop["trigger"]["topic"] == "rtls.position"
    assert stop["latched"] is True
    assert "X9" in stop["reasons"][0]["detail"]


def test_an_unregistered_tag_inside_the_zone_stops_the_permit_at_once():
    s = HotWorkSite().started()
    mark = len(s.outputs)
    s.send("rtls.position", "T-STRAY", {"tag": "T-STRAY", "ts": iso_ms(s.now - 30), "pos": [15.0, 5.0, 1.2], "q": 0.9})
    stop = assert_stopped_by(s, "UNAUTHORISED_ENTRANT", since=mark)
    assert "T-STRAY" in stop["reasons"][0]["detail"]
    (unknown,) = faults(s, "DEVICE_UNKNOWN", since=mark)
    assert unknown["device"] == "T-STRAY"


def test_a_person_already_inside_when_the_permit_activates_prevents_start():
    s = HotWorkSite()
    s.spots["X9"] = (20.0, 5.0)
    s.send("cmdb.devices", "T-X9", {"device": "T-X9", "family": "uwb_tag", "vendor": "anchorline", "worker": "X9"})
    s.started()
    assert_not_enabled_because(s, "UNAUTHORISED_ENTRANT")


def test_a_person_outside_the_zone_is_no_entrant():
    s = HotWorkSite()
    s.spots["X9"] = (31.0, 5.0)  # just east of PR-1
    s.send("cmdb.devices", "T-X9", {"device": "T-X9", "family": "uwb_tag", "vendor": "anchorline", "worker": "X9"})
    s.started()
    s.run(10)
    assert_enabled(s)


def test_a_worker_of_another_active_permit_in_the_same_zone_is_authorised():
    s = HotWorkSite()
    s.spots["W3"] = OUTSIDE
    s.send("cmdb.devices", "T-W3", {"device": "T-W3", "family": "uwb_tag", "vendor": "anchorline", "worker": "W3"})
    s.send("hr.qualifications", "W3", qualification("W3", "electrical"))
    electric = permit_row("TE-2", "temp_electric", "PR-1", workers=["W3"], equipment=["PANEL-4"], isolations=[],
                          detectors=[])
    s.send("ptw.permits", "TE-2", electric)
    s.started()
    s.send("ptw.permits", "TE-2", dict(electric, rev=2, state="active"))
    s.spots["W3"] = (20.0, 5.0)
    s.run(10)
    assert {c["permit"] for c in commands(s, "ENABLE")} == {"HW-1", "TE-2"}
    assert not commands(s, "HARD_STOP")


def test_a_worker_of_a_permit_that_is_only_approved_is_not_authorised_inside():
    s = HotWorkSite()
    s.spots["W3"] = (20.0, 5.0)
    s.send("cmdb.devices", "T-W3", {"device": "T-W3", "family": "uwb_tag", "vendor": "anchorline", "worker": "W3"})
    s.send("ptw.permits", "TE-2", permit_row("TE-2", "temp_electric", "PR-1", rev=1, state="approved", workers=["W3"],
                                             equipment=["PANEL-4"], isolations=[], detectors=[]))
    s.started()
    assert_not_enabled_because(s, "UNAUTHORISED_ENTRANT")


# ---------------------------------------------------------------------------------------------- qualifications


def start_with_w1(row: dict | None, **permit_changes) -> HotWorkSite:
    """The hot-work site with W1's HR row replaced (None: deleted) before the start."""
    s = HotWorkSite()
    s.tables(hot_work_permit(**permit_changes))
    s.send("hr.qualifications", "W1", row)
    s.run(6)
    s.activate(**permit_changes)
    return s


def test_a_worker_inside_with_a_valid_certificate_for_the_work_type_may_work():
    assert_enabled(start_with_w1(qualification("W1", "welding")))


@pytest.mark.parametrize(("case", "row"), [
    ("certificate for another work type", qualification("W1", "electrical")),
    ("expires in exactly 15 days", qualification("W1", expires=day(15), review_due=None)),
    ("expires today", qualification("W1", expires=day(0), review_due=None)),
    ("expired yesterday", qualification("W1", expires=day(-1), review_due=None)),
    ("review overdue", qualification("W1", expires="2028-06-30", review_due=day(-1))),
    ("review due within 15 days", qualification("W1", expires="2028-06-30", review_due=day(10))),
    ("status renewing", qualification("W1", status="renewing")),
    ("status suspended", qualification("W1", status="suspended")),
    ("status revoked", qualification("W1", status="revoked")),
    ("medical check expired", qualification("W1", medical=day(-1))),
    ("no medical check date", qualification("W1", medical=None)),
    ("no HR row", None),
])
def test_a_worker_inside_who_is_red_is_not_qualified_and_stops_the_permit(case, row):
    s = start_with_w1(row)
    stop = assert_not_enabled_because(s, "WORKER_NOT_QUALIFIED")
    assert "W1" in stop["reasons"][0]["detail"]


def test_a_certificate_revoked_during_the_day_stops_the_permit_at_once():
    s = start_with_w1(qualification("W1", "welding"))
    assert_enabled(s)
    mark = len(s.outputs)
    s.send("hr.qualifications", "W1", qualification("W1", status="revoked"))
    stop = assert_stopped_by(s, "WORKER_NOT_QUALIFIED", since=mark)
    assert stop["trigger"]["topic"] == "hr.qualifications"


def test_a_certificate_expiring_in_16_days_only_alerts_the_guardian_and_work_goes_on():
    s = start_with_w1(qualification("W1", expires=day(16), review_due=None))
    assert_enabled(s)
    (alert,) = commands(s, "ALERT")
    assert alert["targets"] == ["G1"]
    assert codes(alert) == ["QUALIFICATION_EXPIRING"]
    (fault,) = faults(s, "QUALIFICATION_EXPIRING")
    assert alert["reasons"][0]["fault"] == fault["id"]
    assert fault["grade"] == "INFO"


@pytest.mark.parametrize(("field", "date"), [("expires", day(90)), ("review_due", day(90))])
def test_a_certificate_or_review_due_in_exactly_90_days_is_yellow(field, date):
    row = qualification("W1", expires="2028-06-30", review_due=None)
    row["certs"][0][field] = date
    s = start_with_w1(row)
    assert_enabled(s)
    assert [codes(c) for c in commands(s, "ALERT")] == [["QUALIFICATION_EXPIRING"]]


def test_a_certificate_due_in_91_days_is_green_and_raises_nothing():
    s = start_with_w1(qualification("W1", expires=day(91), review_due=None))
    assert_enabled(s)
    assert not commands(s, "ALERT")
    assert not faults(s)


def test_the_best_of_several_certificates_of_the_type_counts():
    row = qualification("W1", expires=day(-1), review_due=None)
    row["certs"].append(dict(row["certs"][0], no="C-W1-2", expires="2028-06-30"))
    assert_enabled(start_with_w1(row))


def test_a_medical_check_valid_until_today_is_still_valid():
    assert_enabled(start_with_w1(qualification("W1", medical=day(0))))


def test_an_unqualified_worker_on_the_permit_outside_the_zone_does_not_stop_work_until_they_enter():
    s = HotWorkSite()
    s.spots["W2"] = OUTSIDE
    s.tables()
    s.send("hr.qualifications", "W2", qualification("W2", status="suspended"))
    s.run(6)
    s.activate()
    assert_enabled(s)
    mark = len(s.outputs)
    s.fix("W2", 12.0, 5.0)
    stop = assert_stopped_by(s, "WORKER_NOT_QUALIFIED", since=mark)
    assert stop["trigger"]["topic"] == "rtls.position"


def test_a_certificate_suspended_while_the_worker_is_inside_stops_the_permit_at_once():
    s = HotWorkSite().started()
    mark = len(s.outputs)
    s.send("hr.qualifications", "W1", qualification("W1", status="suspended"))
    stop = assert_stopped_by(s, "WORKER_NOT_QUALIFIED", since=mark)
    assert stop["trigger"]["topic"] == "hr.qualifications"
    assert stop["latched"] is True


def test_certificate_days_are_counted_on_the_china_standard_time_calendar():
    """16 days left on 20 November (site time) is YELLOW; at site midnight it is 15 days: RED, stopped by the clock."""
    start = site_ms(2026, 11, 20, 23, 59, 40)
    midnight = site_ms(2026, 11, 21, 0, 0, 0)
    window = {"valid_from": start - HOUR, "valid_to": start + 6 * HOUR}
    s = HotWorkSite()
    s.now = start
    s.tables(hot_work_permit(**window))
    s.send("hr.qualifications", "W1", qualification("W1", expires="2026-12-06", review_due=None))
    s.run(6)
    s.activate(**window)
    assert_enabled(s)
    assert [codes(c) for c in commands(s, "ALERT")] == [["QUALIFICATION_EXPIRING"]]
    s.run(16)
    stop = assert_stopped_by(s, "WORKER_NOT_QUALIFIED")
    assert stop["ts"] == midnight
    assert stop["trigger"] is None


def crew_holding(permit: dict, cert: str) -> Plant:
    """The permit's site with every worker on it holding one certificate of type `cert`."""
    if permit["type"] == "confined_space":
        zone, spots = TK3, IN_TANK
    else:
        zone, spots = PR1, {"G1": (5.0, 5.0), "W1": (10.0, 5.0), "W2": (12.0, 5.0)}
    workers = {worker: cert for worker in permit["workers"]}
    spots = {person: spot for person, spot in spots.items() if person in workers or person == permit["guardian"]}
    harnesses = {"HB-33": {"hook": "clipped", "h": 5.0}} if permit["harnesses"] else None
    return Plant(permit, zone, spots, workers, harnesses)


@pytest.mark.parametrize(("permit", "cert"), [
    (electric_permit(), "electrical"),
    (height_permit(), "height"),
    (confined_permit(), "confined"),
    (confined_permit(), "hazchem"),
])
def test_a_worker_holding_the_certificate_the_work_type_needs_may_work(permit, cert):
    s = crew_holding(permit, cert).started()
    assert_enabled(s)


@pytest.mark.parametrize(("permit", "cert"), [
    (electric_permit(), "welding"),
    (height_permit(), "electrical"),
    (confined_permit(), "welding"),
    (hot_work_permit(), "height"),
])
def test_a_worker_holding_only_a_certificate_for_another_work_type_is_not_qualified(permit, cert):
    s = crew_holding(permit, cert).started()
    assert_not_enabled_because(s, "WORKER_NOT_QUALIFIED")


# ---------------------------------------------------------------------------------------------- PLC: isolation and ventilation


def test_an_isolation_point_not_isolated_in_the_plc_state_refuses_the_permit():
    s = HotWorkSite()
    s.tables()
    s.run(6, skip=("plc",))
    s.plc({"V-101.isolated": False, "WELD-5.power": True})
    s.activate()
    assert_not_enabled_because(s, "ISOLATION_NOT_CONFIRMED")


def test_an_isolation_point_absent_from_the_plc_state_is_not_confirmed():
    s = HotWorkSite()
    s.tables()
    s.run(6, skip=("plc",))
    s.plc({"WELD-5.power": True})
    s.activate()
    assert_not_enabled_because(s, "ISOLATION_NOT_CONFIRMED")


def test_an_isolation_point_that_opens_while_working_stops_the_permit_at_once():
    s = HotWorkSite().started()
    mark = len(s.outputs)
    s.plc({"V-101.isolated": False})
    stop = assert_stopped_by(s, "ISOLATION_NOT_CONFIRMED", since=mark)
    assert stop["trigger"]["topic"] == "plc.state"
    assert stop["latched"] is True


def test_ventilation_that_is_not_running_refuses_the_permit():
    s = Plant(confined_permit(), TK3, IN_TANK, {"W1": "confined", "W2": "confined"},
              plc_tags={"V-101.isolated": True, "FAN-2.running": False}).started()
    assert_not_enabled_because(s, "VENTILATION_NOT_RUNNING")


def test_ventilation_that_stops_while_working_stops_the_permit():
    s = Plant(confined_permit(), TK3, IN_TANK, {"W1": "confined", "W2": "confined"}).started()
    assert_enabled(s)
    mark = len(s.outputs)
    s.plc({"FAN-2.running": False})
    assert_stopped_by(s, "VENTILATION_NOT_RUNNING", since=mark)


def test_an_isolation_point_on_no_plc_in_the_cmdb_is_not_confirmed():
    s = hot_work_with(isolations=["V-999"])
    assert_not_enabled_because(s, "EQUIPMENT_NOT_ON_PLC")


def test_without_any_plc_state_isolation_is_not_confirmed():
    s = HotWorkSite()
    s.tables()
    s.run(6, skip=("plc",))
    s.activate()
    assert_not_enabled_because(s, "PLC_STATE_STALE")


def test_a_plc_state_exactly_15_s_old_still_confirms_isolation():
    s = HotWorkSite().started()  # last PLC state at T0 + 5 s
    s.run(15, skip=("plc",))  # up to T0 + 20 s
    assert not commands(s, "HARD_STOP")


def test_a_plc_state_older_than_15_s_stops_the_permit():
    s = HotWorkSite().started()
    s.run(16, skip=("plc",))
    stop = assert_stopped_by(s, "PLC_STATE_STALE")
    assert stop["ts"] == T0 + 5 * SECOND + 15 * SECOND + 1
    assert stop["trigger"] is None
    assert stop["latched"] is True


# ---------------------------------------------------------------------------------------------- gas: the pre-start test


def test_exactly_five_consecutive_qualified_readings_allow_start():
    s = HotWorkSite()
    s.tables()
    s.run(5)
    s.activate()
    enable = assert_enabled(s)
    assert "5 qualified readings" in enable["reasons"][0]["detail"]


def test_four_qualified_readings_do_not_allow_start_and_the_fifth_enables():
    s = HotWorkSite()
    s.tables()
    s.run(4)
    s.activate()
    assert not commands(s, "ENABLE")
    (stop,) = commands(s, "HARD_STOP")
    assert codes(stop) == ["GAS_PRETEST_INCOMPLETE"]
    assert stop["reasons"][0]["fault"] is None
    assert stop["latched"] is False
    mark = len(s.outputs)
    s.gas()
    enable = assert_enabled(s, since=mark)
    assert enable["trigger"]["topic"] == "gas.readings"


def test_four_qualified_readings_then_a_bad_one_start_the_count_again():
    s = HotWorkSite()
    s.tables()
    s.run(4)
    reading(s, r=(20.9, 12.0, 0.0, 1.0))  # LEL 12 %: not qualified
    s.now += SECOND
    s.run(4)
    s.activate()
    assert not commands(s, "ENABLE")
    mark = len(s.outputs)
    s.run(1)
    assert_enabled(s, since=mark)


def gas_only_at(s: HotWorkSite, seconds: int, gas_at: set[int]) -> None:
    """`seconds` healthy seconds in which GAS-07 reports only at the given offsets."""
    for i in range(seconds):
        if i in gas_at:
            s.gas()
        s.run(1, skip=("gas",))


def test_five_readings_all_within_the_last_180_s_allow_start():
    s = HotWorkSite()
    s.tables()
    gas_only_at(s, 180, {0, 44, 89, 134, 179})
    s.activate()  # the first reading is exactly 180 s old
    assert_enabled(s)


def test_five_readings_the_first_of_which_is_more_than_180_s_old_do_not_allow_start():
    s = HotWorkSite()
    s.tables()
    gas_only_at(s, 181, {0, 45, 90, 135, 180})
    s.activate()  # the first reading is 181 s old
    stop = assert_not_enabled_because_reason(s, "GAS_PRETEST_INCOMPLETE")
    assert stop["latched"] is False


def assert_not_enabled_because_reason(s: HotWorkSite, code: str) -> dict:
    assert not commands(s, "ENABLE")
    stops = [c for c in commands(s, "HARD_STOP") if code in codes(c)]
    assert stops, [codes(c) for c in commands(s)]
    return stops[0]


def test_five_readings_with_the_latest_more_than_10_s_old_do_not_allow_start():
    s = HotWorkSite()
    s.tables()
    s.run(5)
    s.run(11, skip=("gas",))
    s.activate()
    assert_not_enabled_because_reason(s, "GAS_DATA_STALE")  # the detector went silent: a fault, not only a test to redo


# ---------------------------------------------------------------------------------------------- gas: while working


def test_a_qualified_reading_every_10_s_keeps_work_going():
    s = HotWorkSite().started()  # last reading at T0 + 5 s
    gas_only_at(s, 60, {9, 19, 29, 39, 49, 59})
    assert not commands(s, "HARD_STOP")


def test_no_qualified_reading_for_more_than_10_s_stops_work():
    s = HotWorkSite().started()
    s.run(11, skip=("gas",))
    stop = assert_stopped_by(s, "GAS_DATA_STALE")
    assert stop["ts"] == T0 + 5 * SECOND + 10 * SECOND + 1
    assert stop["trigger"] is None
    assert stop["latched"] is True


@pytest.mark.parametrize(("channel", "r"), [
    ("O2 low", (19.4, 0.0, 0.0, 1.0)),
    ("O2 high", (23.6, 0.0, 0.0, 1.0)),
    ("LEL at 10", (20.9, 10.0, 0.0, 1.0)),
    ("H2S at 7", (20.9, 0.0, 7.0, 1.0)),
    ("CO at 26", (20.9, 0.0, 0.0, 26.0)),
])
def test_a_reading_outside_the_gas_limits_stops_work_at_once(channel, r):
    s = HotWorkSite().started()
    mark = len(s.outputs)
    reading(s, r=r)
    stop = assert_stopped_by(s, "GAS_LIMIT_EXCEEDED", since=mark)
    assert stop["trigger"]["topic"] == "gas.readings"
    assert stop["latched"] is True


@pytest.mark.parametrize(("edge", "r"), [
    ("O2 19.5", (19.5, 0.0, 0.0, 1.0)),
    ("O2 23.5", (23.5, 0.0, 0.0, 1.0)),
    ("LEL 9.9", (20.9, 9.9, 0.0, 1.0)),
    ("H2S 6.9", (20.9, 0.0, 6.9, 1.0)),
    ("CO 25.9", (20.9, 0.0, 0.0, 25.9)),
])
def test_a_reading_on_the_edge_of_the_gas_limits_is_qualified(edge, r):
    s = HotWorkSite().started()
    for _ in range(5):
        reading(s, r=r)
        s.run(1, skip=("gas",))
    assert not commands(s, "HARD_STOP")
    assert not faults(s)


def confined_site(**plant_args) -> Plant:
    return Plant(confined_permit(), TK3, IN_TANK, {"W1": "confined", "W2": "confined"}, **plant_args).started()


def test_a_confined_space_allows_o2_up_to_21_0():
    s = confined_site()
    for _ in range(5):
        reading(s, r=(21.0, 0.0, 0.0, 1.0))
        s.run(1, skip=("gas",))
    assert not commands(s, "HARD_STOP")


def test_a_confined_space_stops_above_21_0_o2():
    s = confined_site()
    mark = len(s.outputs)
    reading(s, r=(21.1, 0.0, 0.0, 1.0))
    assert_stopped_by(s, "GAS_LIMIT_EXCEEDED", since=mark)


def site_at(start: int) -> HotWorkSite:
    window = {"valid_from": start - HOUR, "valid_to": start + 6 * HOUR}
    s = HotWorkSite()
    s.now = start
    s.tables(hot_work_permit(**window))
    s.run(6)
    s.activate(**window)
    assert_enabled(s)
    return s


def test_in_summer_the_co_limit_is_lowered_by_the_seasonal_profile():
    s = site_at(site_ms(2026, 7, 15, 10))
    mark = len(s.outputs)
    reading(s, r=(20.9, 0.0, 0.0, 22.1))  # 26 x 0.85 = 22.1
    assert_stopped_by(s, "GAS_LIMIT_EXCEEDED", since=mark)


def test_in_summer_co_just_under_the_lowered_limit_is_qualified():
    s = site_at(site_ms(2026, 7, 15, 10))
    reading(s, r=(20.9, 0.0, 0.0, 22.0))
    s.run(3)
    assert not commands(s, "HARD_STOP")


def test_outside_summer_the_co_limit_is_not_lowered():
    s = site_at(site_ms(2026, 5, 31, 23, 30))  # still May on site
    reading(s, r=(20.9, 0.0, 0.0, 23.0))
    s.run(3)
    assert not commands(s, "HARD_STOP")


def test_summer_begins_on_1_june_on_the_site_calendar_not_in_utc():
    s = site_at(site_ms(2026, 6, 1, 0, 30))  # 31 May 16:30 UTC
    mark = len(s.outputs)
    reading(s, r=(20.9, 0.0, 0.0, 23.0))
    assert_stopped_by(s, "GAS_LIMIT_EXCEEDED", since=mark)


@pytest.mark.parametrize("channel", [0, 1, 2, 3])
def test_a_gd4_2x_channel_in_sensor_fault_minus_1_is_not_qualified(channel):
    s = HotWorkSite().started()
    r = [20.9, 0.0, 0.0, 1.0]
    r[channel] = -1
    mark = len(s.outputs)
    reading(s, r=r)
    assert_stopped_by(s, "GAS_SENSOR_FAULT", since=mark)


@pytest.mark.parametrize("channel", ["o2", "lel", "h2s", "co"])
def test_a_gd4_3x_channel_in_sensor_fault_null_is_not_qualified(channel):
    s = HotWorkSite().started()
    approve_gd4_3x(s)
    r = {"o2": 20.9, "lel": 0.0, "h2s": 0.0, "co": 1.0}
    r[channel] = None
    mark = len(s.outputs)
    reading_v3(s, r=r)
    assert_stopped_by(s, "GAS_SENSOR_FAULT", since=mark)


def test_a_gd4_3x_reading_with_status_ok_is_qualified():
    s = HotWorkSite().started()
    approve_gd4_3x(s)
    for _ in range(15):
        reading_v3(s)
        s.run(1, skip=("gas",))
    assert not commands(s, "HARD_STOP")


@pytest.mark.parametrize("status", ["warmup", "fault", "cal_due"])
def test_a_gd4_3x_reading_with_status_other_than_ok_is_not_evidence(status):
    s = HotWorkSite().started()
    approve_gd4_3x(s)
    mark = len(s.outputs)
    reading_v3(s, st=status)
    assert_stopped_by(s, "GAS_DETECTOR_NOT_READY", since=mark)


def test_a_bump_test_exactly_24_h_old_is_still_relied_on():
    s = HotWorkSite().started()
    approve_gd4_3x(s)
    reading_v3(s, bump=s.now - DAY)
    assert not commands(s, "HARD_STOP")


def test_a_bump_test_more_than_24_h_old_makes_the_reading_unreliable():
    s = HotWorkSite().started()
    approve_gd4_3x(s)
    mark = len(s.outputs)
    reading_v3(s, bump=s.now - DAY - 1)
    assert_stopped_by(s, "GAS_BUMP_TEST_OVERDUE", since=mark)


@pytest.mark.parametrize("bit", [0, 1, 2, 3, 4, 7])
def test_a_gd4_2x_alarm_bit_makes_the_reading_not_qualified(bit):
    s = HotWorkSite().started()
    mark = len(s.outputs)
    reading(s, alm=1 << bit)
    assert_stopped_by(s, "GAS_DETECTOR_ALARM", since=mark)


def test_a_bad_reading_before_activation_refuses_the_start():
    s = HotWorkSite()
    s.tables()
    s.run(6)
    reading(s, r=(20.9, 15.0, 0.0, 1.0))
    s.activate()
    stop = assert_not_enabled_because(s, "GAS_LIMIT_EXCEEDED")
    assert stop["latched"] is False


# ---------------------------------------------------------------------------------------------- height: tie-off


def height_site(harness: dict | None = None, harness_fw: str = "1.4.2") -> Plant:
    state = harness or {"hook": "clipped", "h": 5.0}
    return Plant(height_permit(), PR1, {"W1": (10.0, 5.0), "G1": (5.0, 5.0)}, {"W1": "height"},
                 {"HB-33": state}, harness_fw).started()


def test_a_harness_clipped_at_height_keeps_work_going():
    s = height_site()
    assert_enabled(s)
    s.run(60)
    assert not commands(s, "HARD_STOP")
    assert not commands(s, "ALERT")


def test_a_harness_untied_at_height_for_9_s_then_clipped_raises_nothing():
    s = height_site()
    s.harness_state["HB-33"] = {"hook": "unclipped", "h": 5.0}
    s.run(9)
    s.harness_state["HB-33"] = {"hook": "clipped", "h": 5.0}
    s.run(40)
    assert not commands(s, "ALERT")
    assert not commands(s, "HARD_STOP")


def test_a_harness_untied_at_height_for_10_s_alerts_the_guardian_and_work_goes_on():
    s = height_site()
    untied_at = s.now
    s.harness_state["HB-33"] = {"hook": "unclipped", "h": 5.0}
    s.run(11)
    (alert,) = commands(s, "ALERT")
    assert alert["targets"] == ["G1"]
    assert alert["ts"] == untied_at + 10 * SECOND
    assert codes(alert) == ["HARNESS_UNTIED_WARNING"]
    (warning,) = faults(s, "HARNESS_UNTIED_WARNING")
    assert alert["reasons"][0]["fault"] == warning["id"]
    assert warning["grade"] == "MAJOR"
    assert not commands(s, "HARD_STOP")


def test_a_harness_untied_at_height_for_30_s_stops_the_permit():
    s = height_site()
    untied_at = s.now
    s.harness_state["HB-33"] = {"hook": "unclipped", "h": 5.0}
    s.run(31)
    stop = assert_stopped_by(s, "HARNESS_UNTIED")
    assert stop["ts"] == untied_at + 30 * SECOND
    assert stop["latched"] is True
    assert stop["targets"] == ["HOIST-1"]


def test_a_harness_untied_for_29_s_then_clipped_is_not_stopped():
    s = height_site()
    s.harness_state["HB-33"] = {"hook": "unclipped", "h": 5.0}
    s.run(29)
    s.harness_state["HB-33"] = {"hook": "clipped", "h": 5.0}
    s.run(30)
    assert not commands(s, "HARD_STOP")


def test_a_harness_untied_below_2_m_is_allowed():
    s = height_site()
    s.harness_state["HB-33"] = {"hook": "unclipped", "h": 1.99}
    s.run(60)
    assert not commands(s, "HARD_STOP")
    assert not commands(s, "ALERT")


def test_a_harness_untied_at_exactly_2_m_is_at_height():
    s = height_site()
    s.harness_state["HB-33"] = {"hook": "unclipped", "h": 2.0}
    s.run(31)
    assert_stopped_by(s, "HARNESS_UNTIED")


def test_harness_data_stale_for_10_s_at_height_counts_as_untied():
    s = height_site()
    last_report = s.now - SECOND
    s.run(31, skip=("HB-33",))
    (alert,) = commands(s, "ALERT")
    assert codes(alert) == ["HARNESS_UNTIED_WARNING"]
    assert alert["ts"] == last_report + 10 * SECOND + 1
    assert alert["trigger"] is None
    stop = assert_stopped_by(s, "HARNESS_UNTIED")
    assert stop["ts"] == last_report + 30 * SECOND
    assert stop["trigger"] is None


def test_a_harness_report_that_cannot_be_trusted_prevents_start_at_once():
    s = Plant(height_permit(), PR1, {"W1": (10.0, 5.0), "G1": (5.0, 5.0)}, {"W1": "height"},
              {"HB-33": {"hook": "clipped", "h": 5.0}})
    s.tables()
    s.run(6)
    s.send("harness.status", "HB-33", {"dev": "HB-33", "fw": "1.4.2", "ts": s.now - 20, "seq": s.next_seq("HB-33"),
                                       "hook": "half", "h": 5.0, "bat": 80})
    s.activate()
    assert_not_enabled_because(s, "PAYLOAD_SCHEMA_MISMATCH")


def test_untrusted_harness_reports_at_height_count_as_untied_from_the_last_trusted_one():
    s = height_site()
    last_trusted = s.now - SECOND
    for _ in range(31):
        s.send("harness.status", "HB-33", {"dev": "HB-33", "fw": "1.4.2", "ts": s.now - 20,
                                           "seq": s.next_seq("HB-33"), "hook": "half", "h": 5.0, "bat": 80})
        s.healthy_second(skip=("HB-33",))
        s.now += SECOND
    (alert,) = commands(s, "ALERT")
    assert codes(alert) == ["HARNESS_UNTIED_WARNING"] and alert["ts"] == last_trusted + 10 * SECOND
    stop = assert_stopped_by(s, "HARNESS_UNTIED")
    assert stop["ts"] == last_trusted + 30 * SECOND


def test_a_listed_harness_that_has_not_reported_prevents_start():
    s = Plant(height_permit(), PR1, {"W1": (10.0, 5.0), "G1": (5.0, 5.0)}, {"W1": "height"},
              {"HB-33": {"hook": "clipped", "h": 5.0}})
    s.tables()
    s.run(6, skip=("HB-33",))
    s.activate()
    assert_not_enabled_because(s, "HARNESS_DATA_STALE")


def test_a_twin_lanyard_harness_with_one_hook_clipped_is_tied_off():
    s = height_site({"hooks": [0, 1], "h": 8.0}, harness_fw="2.0.1")
    s.run(40)
    assert_enabled(s)


def test_a_twin_lanyard_harness_with_no_hook_clipped_at_height_is_untied():
    s = height_site({"hooks": [1, 1], "h": 8.0}, harness_fw="2.0.1")
    s.harness_state["HB-33"] = {"hooks": [0, 0], "h": 8.0}
    s.run(31)
    assert_stopped_by(s, "HARNESS_UNTIED")
