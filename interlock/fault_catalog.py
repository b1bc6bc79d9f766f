"""Every fault code the interlock raises: its base grade, what it means, and what the operator does about it.

Grades have fixed meanings. CRITICAL: a safety function for active or
requested work is lost; it always comes with a stop or a refusal, and a fault
of a lower base grade is raised as (or escalated to) CRITICAL as soon as a
stop or refusal rests on it. MAJOR: a safety input is degraded, nothing active
depends on it yet. MINOR: data quality absorbed without loss. INFO: for the
record. docs/faults.md is generated from this table.
"""

from __future__ import annotations

import msgspec

GRADES = ("CRITICAL", "MAJOR", "MINOR", "INFO")
GRADE_RANK = {grade: rank for rank, grade in enumerate(GRADES)}


class FaultKind(msgspec.Struct, frozen=True):
    """`lasting` faults clear when their condition ends; `event` faults clear after a quiet period without recurrence."""

    grade: str
    lasting: bool
    meaning: str
    action: str


def _c(grade: str, meaning: str, action: str) -> FaultKind:
    return FaultKind(grade, True, meaning, action)


def _e(grade: str, meaning: str, action: str) -> FaultKind:
    return FaultKind(grade, False, meaning, action)


CATALOG: dict[str, FaultKind] = {
    # records and tables
    "ENVELOPE_UNREADABLE": _e("MAJOR", "A recording line is not a kcat -J envelope; the line is skipped.",
                              "Check the capture (kcat -C -J) for truncated or hand-edited lines; the fault names the line."),
    "TOPIC_UNKNOWN": _e("INFO", "A record arrived on a topic the interlock does not read; it is ignored.",
                        "None, unless the topic should be read: then it is a configuration error in the capture or deployment."),
    "TABLE_ROW_INVALID": _e("MAJOR", "A CMDB, GIS, HR or permit-system row does not fit its sheet; the previous row stays in force.",
                            "Ask the owning system's team to correct the row; the fault gives path, expected and got."),
    "TOMBSTONE_WITHOUT_KEY": _e("MINOR", "A tombstone (null payload) arrived without a key, so nothing can be deleted.",
                                "Check the producer of that table topic: deletes must carry the row's key."),
    "PERMIT_STALE_REV": _e("MINOR", "A permit record whose rev is not newer than the one held; it changes nothing.",
                           "None if it is a redelivery; otherwise check the permit system's revision numbering."),
    "PERMIT_UNKNOWN": _e("MINOR", "A permit action names a permit the interlock does not hold.",
                         "Check that the permit record was published to ptw.permits."),
    "ACTION_UNKNOWN": _e("MINOR", "A ptw.actions record with an action other than reset or ack; ignored.",
                         "Check the permit system's action names against protocols section 9."),
    # devices
    "DEVICE_UNKNOWN": _c("MAJOR", "Telemetry from a device (or a located UWB tag) with no CMDB row; it cannot be evidence. "
                                  "An unregistered tag located in a zone with active work counts as an unauthorised person.",
                         "Register the device in the CMDB with its approved firmware, or remove it from the site."),
    "DEVICE_MODEL_UNSUPPORTED": _c("MAJOR", "The CMDB row names a model, firmware or vendor the protocol catalog does not know, so no "
                                            "schema can validate its data.",
                                   "Certify the firmware with `interlock certify` and add it to the protocol catalog, or correct the CMDB row."),
    "DEVICE_ID_MISMATCH": _c("MAJOR", "The device id inside the payload differs from the record key; the data is not trusted.",
                             "Check the gateway's device mapping."),
    "PAYLOAD_UNPARSEABLE": _c("MAJOR", "The payload is not well-formed JSON, not UTF-8, or too large; it cannot be evidence.",
                              "Check the device and its gateway; the fault gives the parser's message."),
    "PAYLOAD_SCHEMA_MISMATCH": _c("MAJOR", "The payload does not fit the schema of the device's approved firmware; its data is not "
                                           "evidence. The fault names the JSON path, expected and got, the firmware reported and "
                                           "approved, and any other known schema the payload matches (a field upgrade).",
                                  "If the payload matches a newer schema the device was upgraded in the field: certify and approve "
                                  "that firmware in the CMDB, re-test, then reset. Otherwise replace or repair the device."),
    "PAYLOAD_VALUE_OUT_OF_RANGE": _c("MAJOR", "A value lies outside the sensor's measuring range; the reading is corrupt, not a level.",
                                     "Check the sensor and its calibration; replace the detector."),
    "FIRMWARE_UNAPPROVED": _c("MAJOR", "The device reports firmware other than the CMDB's approved firmware, even though its payload "
                                       "still fits; its data is not evidence.",
                              "Certify the firmware with `interlock certify`, approve it in the CMDB, or roll the device back."),
    "DEVICE_CLOCK_SKEW": _c("MAJOR", "The device clock is more than the allowed skew from the record time; the reading's time is "
                                     "unknown, so it is not evidence.",
                            "Resynchronise the device or gateway clock (NTP)."),
    "RTLS_VENDOR_MISMATCH": _c("MAJOR", "A UWB tag reported through a vendor format other than its CMDB vendor; the fix is not evidence.",
                               "Correct the tag's vendor in the CMDB or move the tag to the right gateway system."),
    "SEQ_DUPLICATE": _e("MINOR", "Duplicate or replayed messages (sequence number not newer) were dropped.",
                        "None; persistent duplicates point at a gateway retrying too eagerly."),
    "SEQ_GAP": _e("MINOR", "Sequence numbers skipped: messages were lost between device and broker; the count is the number lost.",
                  "Check the radio link or gateway if the count keeps growing."),
    "SEQ_RESET": _e("MINOR", "A device's sequence number went back while its clock went forward: it restarted.",
                    "None, unless restarts repeat: then check the device's power."),
    # gas
    "GAS_SENSOR_FAULT": _c("MAJOR", "A detector channel reports sensor fault; its readings are not qualified.",
                           "Replace or repair the detector; re-test the gas before restarting."),
    "GAS_DETECTOR_NOT_READY": _c("MAJOR", "The detector's status is warmup, fault or cal_due; its readings are not evidence.",
                                 "Wait for warm-up, or calibrate or replace the detector."),
    "GAS_BUMP_TEST_OVERDUE": _c("MAJOR", "The detector's last bump test is older than allowed (24 h); its readings must not be relied on.",
                                "Bump-test the detector, then re-test the gas."),
    "GAS_DETECTOR_ALARM": _c("MAJOR", "The detector raised its own alarm bits; its readings are not qualified.",
                             "Treat as a gas alarm: evacuate if needed and investigate before restarting."),
    "GAS_LIMIT_EXCEEDED": _c("MAJOR", "A gas reading is outside the permit's limits (O2 range, LEL, H2S, CO).",
                             "Stop work, ventilate and find the source; restart needs a new gas test and the approver's reset."),
    "GAS_DATA_STALE": _c("CRITICAL", "No qualified gas reading from a listed detector within the allowed age while work runs or "
                                     "starts.",
                         "Check the detector, its battery and its gateway; restart needs a new gas test and the approver's reset."),
    "GAS_DETECTOR_NOT_LISTED": _c("CRITICAL", "A hot-work or confined-space permit lists no gas detector, so no gas evidence exists.",
                                  "Add the detectors to the permit in the permit system."),
    # permit record
    "PERMIT_OUTSIDE_VALIDITY": _c("CRITICAL", "The time is outside the permit's valid_from..valid_to.",
                                  "Issue a new permit or extend it in the permit system."),
    "PERMIT_WINDOW_TOO_LONG": _c("CRITICAL", "The permit's validity window exceeds the GB 30871-2022 maximum for its type and grade.",
                                 "Reissue the permit with a window within the limit."),
    "PERMIT_GRADE_UNKNOWN": _c("CRITICAL", "The permit's grade is not one the site settings know for its type, so its maximum window "
                                           "cannot be checked.",
                               "Correct the grade in the permit system, or add it to max_window_hours."),
    "PERMIT_SIGNATURE_MISSING": _c("CRITICAL", "One of the four signatures (applicant, guardian, approver, supervisor) is missing.",
                                   "Complete the signatures in the permit system."),
    "PERMIT_APPROVER_IS_APPLICANT": _c("CRITICAL", "The approver signed as the applicant too.", "Have a different person approve."),
    "PERMIT_GUARDIAN_IS_WORKER": _c("CRITICAL", "The guardian is also listed as a worker.", "Name a guardian who does not work on the job."),
    "ZONE_UNKNOWN": _c("CRITICAL", "The permit's zone has no GIS row, so presence cannot be checked.",
                       "Publish the zone in the GIS or correct the permit's zone."),
    "ZONE_FORBIDS_WORK_TYPE": _c("CRITICAL", "The zone forbids the permit's work type.", "Do not work here; reissue the permit elsewhere."),
    # people
    "GUARDIAN_ABSENT": _c("CRITICAL", "The guardian has not been located (fix quality at least 0.5) in the zone, or in the entrance "
                                      "area of a confined space, for longer than allowed (30 s).",
                          "Get the guardian back in place; restart needs the approver's reset."),
    "UNAUTHORISED_ENTRANT": _c("CRITICAL", "Someone not on the zone's active permits (workers or guardian), or an unregistered tag, is "
                                           "inside the zone.",
                               "Get the person out of the zone or add them to the permit; restart needs the approver's reset."),
    "WORKER_NOT_QUALIFIED": _c("CRITICAL", "A worker inside the zone has no certificate for the work type in good standing (RED: "
                                           "expired or expiring within 15 days, review due, status not valid, medical expired, or no "
                                           "HR record).",
                               "Take the worker off the job until the certificate or medical check is renewed."),
    "QUALIFICATION_EXPIRING": _c("INFO", "A worker's certificate expires or its review falls due within 90 days (YELLOW); work goes on.",
                                 "Plan the renewal or review with HR."),
    # PLC
    "EQUIPMENT_NOT_ON_PLC": _c("CRITICAL", "An isolation or ventilation item of the permit is on no PLC in the CMDB, so its state is "
                                           "unknown.",
                               "Add the equipment to its PLC's CMDB row, or correct the permit."),
    "PLC_STATE_STALE": _c("CRITICAL", "The PLC's latest state is older than allowed (15 s), so isolation and ventilation are not "
                                      "confirmed.",
                          "Check the PLC edge gateway and its link to Kafka."),
    "PLC_UNREACHABLE": _c("CRITICAL", "The interlock cannot write to the PLC (connection refused, timed out or a write failed): it "
                                      "cannot hold the enables there, and the PLC's watchdog drops them within 1 s. Work whose "
                                      "equipment is enabled on that PLC is stopped and latched.",
                          "Check the PLC and the network path to it; the interlock retries with backoff and rewrites every "
                          "enable when the link is back, after which the approver may reset."),
    "INTERLOCK_RESTARTED": _e("MAJOR", "The interlock restarted from its last snapshot (after a crash or a deploy). The PLC "
                                       "watchdogs dropped the enables it held; enabled work is stopped and latched rather than "
                                       "re-energised without anyone deciding so.",
                              "Check why the interlock restarted; once the evidence is fresh, the approver resets each "
                              "permit."),
    "ISOLATION_NOT_CONFIRMED": _c("CRITICAL", "An isolation point of the permit is not `isolated` in the PLC's latest state.",
                                  "Lock out and tag the isolation point and confirm it on the PLC."),
    "VENTILATION_NOT_RUNNING": _c("CRITICAL", "A ventilation fan of the permit is not `running` in the PLC's latest state.",
                                  "Restart the ventilation; re-test the gas before restarting work."),
    # height
    "HARNESS_UNTIED_WARNING": _c("MAJOR", "A harness at height has not been tied off for 10 s (or its data is stale); the guardian is "
                                          "alerted.",
                                 "The guardian gets the worker to clip on now."),
    "HARNESS_UNTIED": _c("CRITICAL", "A harness at height has not been tied off for 30 s (stale data at height counts as untied).",
                         "Get the worker tied off or down; restart needs the approver's reset."),
    "HARNESS_DATA_STALE": _c("CRITICAL", "A listed harness has sent no usable data within the allowed age, so tie-off cannot be "
                                         "confirmed at start.",
                             "Check the harness battery and radio; restart needs fresh data."),
    # risk model
    "RISK_BLUE": _c("INFO", "The zone's risk score (the LSTM's probability of the zone's air being past a gas limit within 12 minutes) is "
                            "at or over the blue threshold: conditions are drifting the wrong way.",
                    "The team leader looks at the zone's gas trends and ventilation; work goes on."),
    "RISK_YELLOW": _c("MAJOR", "The zone's risk score is at or over the yellow threshold: a gas limit may be crossed within "
                               "12 minutes.",
                      "The guardian acknowledges the alert (ptw.actions ack), checks the zone's air and ventilation and "
                      "gets ready to pull the crew out."),
    "RISK_RED": _c("CRITICAL", "The zone's risk score has stayed at or over the red threshold: a gas limit is likely to be "
                               "crossed within minutes. Every permit in the zone is stopped and an evacuation alert sent.",
                   "Evacuate the zone, find the source (leak, ventilation, purge); restart needs the grade below red "
                   "and the approver's reset."),
    "RISK_ALERT_UNACKNOWLEDGED": _c("MAJOR", "A yellow or red risk alert has not been acknowledged by the permit's guardian "
                                             "within the allowed time (2 min).",
                                    "Reach the guardian by radio; the control room watches the zone until the alert is "
                                    "acknowledged."),
    # close and reset
    "ENTRANT_LEFT_INSIDE": _c("CRITICAL", "At the close of a confined-space permit someone's last fix is inside the space.",
                              "Account for the person at once: search the space before anyone leaves the site."),
    "RESET_UNAUTHORISED": _e("MAJOR", "A reset was sent by someone who is not the permit's approver; it was refused (security event).",
                             "Find out who sent it and why; only the approver may reset."),
    "RESET_REFUSED_CAUSES_PRESENT": _e("INFO", "The approver's reset was refused because the causes of the stop are still present.",
                                       "Clear the causes listed in the stop, then reset again."),
}

REASONS_WITHOUT_FAULT: dict[str, str] = {
    "PERMIT_NOT_ACTIVE": "The permit left the active state (suspended, closed, cancelled or deleted): its equipment stops.",
    "GAS_PRETEST_INCOMPLETE": "Not yet 5 consecutive qualified readings within 180 s from every listed detector: start waits.",
    "TRIP_RESET_REQUIRED": "The causes of a latched stop are gone; the approver may now reset.",
    "RESET_ACCEPTED": "The approver reset the latched stop.",
    "ALL_PRECONDITIONS_MET": "Every precondition of the permit holds.",
}
"""Reason codes that commands carry without a fault behind them."""


def catalog_markdown() -> str:
    """docs/faults.md: every code, grade, meaning and the operator's action, from this table."""
    lines = [
        "# Fault catalog",
        "",
        "Generated from `interlock/fault_catalog.py`; regenerate with",
        "`.venv/bin/python -c \"from interlock.fault_catalog import catalog_markdown as m; print(m(), end='')\" > docs/faults.md`.",
        "",
        "## Grades",
        "",
        "| grade | meaning |",
        "|---|---|",
        "| CRITICAL | A safety function for active or requested work is lost. Always comes with a HARD_STOP or a refused start; a fault of a lower base grade is raised as CRITICAL (or re-sent as CRITICAL) as soon as a stop or refusal rests on it. |",
        "| MAJOR | A safety input is degraded; nothing active depends on it yet. |",
        "| MINOR | Data quality absorbed without loss (duplicates dropped, gaps counted). |",
        "| INFO | For the record. |",
        "",
        "A fault is identified by its code and its subject (the device, permit, worker or topic it is about). It is "
        "raised once and counted while it recurs. *Lasting* faults are cleared when their condition ends (a trusted "
        "payload from the device, the precondition holding again); *event* faults are cleared after "
        "`fault_quiet_clear_ms` (60 s) without recurrence. The `cleared` record carries the final count.",
        "",
        "## Codes",
        "",
        "| code | base grade | clears | meaning | operator's action |",
        "|---|---|---|---|---|",
    ]
    for code, kind in CATALOG.items():
        clears = "when it ends" if kind.lasting else "after quiet"
        lines.append(f"| `{code}` | {kind.grade} | {clears} | {kind.meaning} | {kind.action} |")
    lines += [
        "",
        "## Reasons that are not faults",
        "",
        "Commands carry these reason codes with `fault: null`.",
        "",
        "| code | meaning |",
        "|---|---|",
    ]
    for code, meaning in REASONS_WITHOUT_FAULT.items():
        lines.append(f"| `{code}` | {meaning} |")
    return "\n".join(lines) + "\n"
