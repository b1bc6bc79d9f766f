"""The PLC simulator: real Modbus TCP and OPC UA servers built from CMDB PLC rows, with the §4 watchdog rule.

Every server listens on a free port (the rows say port 0), so these tests never collide with a
running demo. Each test runs its own event loop with `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from pymodbus.client import AsyncModbusTcpClient

from schemas.payloads import DeviceRow
from simulators.opcua_certificates import generate_self_signed_certificate
from simulators.plc_opcua import OpcuaSecurity
from simulators.plc_sim import (
    PlcConfigError,
    PlcSimulator,
    ReceivedWrite,
    WatchdogTrip,
    plc_rows_from_jsonl,
    plc_rows_from_recording,
    plc_tags_from_recording,
)

INCIDENT = Path(__file__).resolve().parents[1] / "simulators" / "incidents" / "firmware_change.jsonl"
WELD5_ENABLE = "ns=2;s=PLC3.WELD5.Enable"
PLC3_WATCHDOG = "ns=2;s=PLC3.Watchdog"


def plc3_row(*, modbus: bool = True, opcua: bool = False, port: int = 0) -> DeviceRow:
    """The §5 example row of PLC-3, on free ports."""
    row: dict = {"device": "PLC-3", "family": "plc", "equipment": ["WELD-5", "FAN-2", "V-101"]}
    if modbus:
        row["modbus"] = {"host": "127.0.0.1", "port": port, "unit": 1,
                         "enable_coils": {"WELD-5": 0, "FAN-2": 1}, "watchdog_register": 100}
    if opcua:
        row["opcua"] = {"endpoint": "opc.tcp://127.0.0.1:0/plc3", "enable_nodes": {"WELD-5": WELD5_ENABLE},
                        "watchdog_node": PLC3_WATCHDOG}
    return msgspec.convert(row, DeviceRow)


@contextlib.asynccontextmanager
async def modbus_client(sim: PlcSimulator, plc: str = "PLC-3") -> AsyncIterator[AsyncModbusTcpClient]:
    """A pymodbus client connected to `plc`'s Modbus server, as the interlock would be."""
    host, port, _unit = sim.modbus_address(plc)
    client = AsyncModbusTcpClient(host, port=port, timeout=1, retries=0)
    assert await client.connect(), f"cannot connect to {plc} at {host}:{port}"
    try:
        yield client
    finally:
        client.close()


@contextlib.asynccontextmanager
async def live_watchdog(client: AsyncModbusTcpClient, period: float = 0.2) -> AsyncIterator[None]:
    """An interlock's watchdog: register 100 incremented every `period` seconds while the block runs."""

    async def beat() -> None:
        value = 0
        while True:
            value = (value + 1) % 65536
            await client.write_register(100, value, device_id=1)
            await asyncio.sleep(period)

    task = asyncio.create_task(beat())
    await asyncio.sleep(0.05)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def envelope(offset: int, ts: int, topic: str, key: str | None, payload: dict | None) -> str:
    """One kcat -C -J line."""
    return json.dumps({"topic": topic, "partition": 0, "offset": offset, "tstype": "create", "ts": ts, "broker": -1,
                       "key": key, "payload": None if payload is None else json.dumps(payload)})


# CMDB rows and initial tags ------------------------------------------------------


def test_plc_rows_from_a_recording_are_the_latest_row_per_key_without_tombstoned_ones(tmp_path):
    plc3 = msgspec.to_builtins(plc3_row(port=5020))
    moved = {**plc3, "modbus": {**plc3["modbus"], "port": 6020}}
    plc9 = {**plc3, "device": "PLC-9"}
    gas = {"device": "GAS-07", "family": "gas", "model": "GD-4", "firmware": "2.3.1", "zone": "TK-3"}
    lines = [
        envelope(0, 1000, "cmdb.devices", "PLC-3", plc3),
        envelope(1, 1001, "cmdb.devices", "PLC-9", plc9),
        envelope(2, 1002, "cmdb.devices", "GAS-07", gas),
        envelope(3, 1004, "cmdb.devices", "PLC-9", None),
        envelope(4, 1003, "cmdb.devices", "PLC-3", moved),
    ]
    recording = tmp_path / "recording.jsonl"
    recording.write_text("\n".join(lines) + "\n")

    rows = plc_rows_from_recording(recording)

    assert [(row.device, row.modbus.port) for row in rows] == [("PLC-3", 6020)]


def test_the_firmware_change_recording_gives_plc_3_4_5_on_modbus_ports_5020_to_5022_with_their_last_tags():
    rows = plc_rows_from_recording(INCIDENT)
    tags = plc_tags_from_recording(INCIDENT)

    assert [(row.device, row.modbus.port, row.modbus.enable_coils) for row in rows] == [
        ("PLC-3", 5020, {"WELD-5": 0}), ("PLC-4", 5021, {"PUMP-4": 0}), ("PLC-5", 5022, {"DRILL-6": 0})]
    assert tags["PLC-3"] == {"WELD-5.power": True, "V-101.isolated": True}
    assert tags["PLC-4"] == {"FAN-2.running": True, "PUMP-4.running": True, "V-205.isolated": True}


def test_plc_rows_from_jsonl_keep_only_plc_rows_and_the_last_row_per_device(tmp_path):
    plc3 = msgspec.to_builtins(plc3_row(port=5020))
    cmdb = tmp_path / "cmdb.jsonl"
    cmdb.write_text("\n".join(json.dumps(row) for row in [
        plc3, {"device": "T-00012", "family": "uwb_tag", "vendor": "anchorline", "worker": "W0012"},
        {**plc3, "modbus": {**plc3["modbus"], "unit": 2}},
    ]) + "\n")

    assert [(row.device, row.modbus.unit) for row in plc_rows_from_jsonl(cmdb)] == [("PLC-3", 2)]


def test_rows_that_cannot_be_served_are_refused_naming_the_value_and_the_fix():
    row = msgspec.to_builtins(plc3_row(port=5020, opcua=True))
    row["modbus"]["enable_coils"] = {"WELD-5": 0, "FAN-2": 0}
    row["opcua"]["watchdog_node"] = "ns=0;s=Watchdog"
    other = {**msgspec.to_builtins(plc3_row(port=5020)), "device": "PLC-4"}

    with pytest.raises(PlcConfigError) as refused:
        PlcSimulator([msgspec.convert(row, DeviceRow), msgspec.convert(other, DeviceRow)])

    message = str(refused.value)
    assert "coil 0 is the enable of both WELD-5 and FAN-2" in message
    assert "'ns=0;s=Watchdog'" in message and "ns=1 or above" in message
    assert "PLC-4: modbus 127.0.0.1:5020 is already taken by PLC-3 modbus" in message


# Modbus TCP ---------------------------------------------------------------------


def test_a_modbus_client_writes_a_coil_and_reads_it_back():
    async def scenario() -> None:
        async with PlcSimulator([plc3_row()]) as sim, modbus_client(sim) as client:
            assert (await client.read_coils(0, count=2, device_id=1)).bits[:2] == [False, False]
            assert not (await client.write_coil(1, True, device_id=1)).isError()

            assert (await client.read_coils(0, count=2, device_id=1)).bits[:2] == [False, True]
            assert sim.enable("PLC-3", "FAN-2") and not sim.enable("PLC-3", "WELD-5")

    asyncio.run(scenario())


def test_a_write_to_a_coil_that_is_no_enable_is_refused_with_illegal_data_address():
    async def scenario() -> None:
        async with PlcSimulator([plc3_row()]) as sim, modbus_client(sim) as client:
            refused = await client.write_coils(1, [True, True], device_id=1)  # coil 2 is not an enable

            assert refused.isError() and refused.exception_code == 0x02
            assert sim.writes() == [] and not sim.enable("PLC-3", "FAN-2")

    asyncio.run(scenario())


def test_a_request_for_another_unit_id_is_refused_with_exception_0x0b():
    async def scenario() -> None:
        async with PlcSimulator([plc3_row()]) as sim, modbus_client(sim) as client:
            refused = await client.write_coil(0, True, device_id=7)

            assert refused.isError() and refused.exception_code == 0x0B  # gateway target failed to respond
            assert sim.writes() == [] and not sim.enable("PLC-3", "WELD-5")

    asyncio.run(scenario())


@pytest.mark.skipif(shutil.which("mbpoll") is None, reason="mbpoll is not installed (Debian package mbpoll)")
def test_mbpoll_reads_back_a_coil_written_by_the_interlock():
    async def scenario() -> None:
        async with PlcSimulator([plc3_row()]) as sim, modbus_client(sim) as client, live_watchdog(client):
            _host, port, unit = sim.modbus_address("PLC-3")
            await client.write_coil(1, True, device_id=unit)
            # mbpoll numbers coils from 1 unless given -0: FAN-2's coil, address 1, is reference 2.
            mbpoll = await asyncio.create_subprocess_exec(
                "mbpoll", "-m", "tcp", "-a", str(unit), "-t", "0", "-r", "2", "-c", "1", "-1", "-p", str(port),
                "127.0.0.1", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(mbpoll.communicate(), timeout=10)

            assert mbpoll.returncode == 0, err.decode()
            assert "[2]: \t1" in out.decode().splitlines()

    asyncio.run(scenario())


# The watchdog ----------------------------------------------------------------------


def test_enables_stay_on_while_the_watchdog_changes_every_200_ms():
    async def scenario() -> None:
        async with PlcSimulator([plc3_row()]) as sim, modbus_client(sim) as client:
            async with live_watchdog(client, period=0.2):
                await client.write_coils(0, [True, True], device_id=1)
                await asyncio.sleep(1.3)

                assert sim.enable("PLC-3", "WELD-5") and sim.enable("PLC-3", "FAN-2")
                assert sim.trips() == []

    asyncio.run(scenario())


def test_every_enable_drops_within_1_2_s_after_the_watchdog_stops_changing():
    async def scenario() -> None:
        async with PlcSimulator([plc3_row()]) as sim, modbus_client(sim) as client:
            last_change = time.monotonic()
            await client.write_register(100, 1, device_id=1)
            await client.write_coils(0, [True, True], device_id=1)
            await client.write_register(100, 1, device_id=1)  # the same value again is no sign of life

            while sim.enable("PLC-3", "WELD-5") or sim.enable("PLC-3", "FAN-2"):
                assert time.monotonic() - last_change < 1.2, "enables still on 1.2 s after the watchdog stopped"
                await asyncio.sleep(0.01)

            assert [(trip.dropped, trip.unchanged_ms >= 1000) for trip in sim.trips()] == [(["WELD-5", "FAN-2"], True)]
            assert (await client.read_coils(0, count=2, device_id=1)).bits[:2] == [False, False]

    asyncio.run(scenario())


def test_the_write_log_records_every_write_and_the_watchdog_trip(tmp_path):
    log = tmp_path / "writes.jsonl"

    async def scenario() -> list[object]:
        async with PlcSimulator([plc3_row()], write_log=log) as sim, modbus_client(sim) as client:
            await client.write_register(100, 41, device_id=1)
            await client.write_coil(0, True, device_id=1)
            while not sim.trips():
                await asyncio.sleep(0.02)
            return sim.log

    in_memory = asyncio.run(scenario())

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [{k: v for k, v in line.items() if k != "ts"} for line in lines] == [
        {"plc": "PLC-3", "protocol": "modbus", "item": "watchdog", "address": 100, "value": 41},
        {"plc": "PLC-3", "protocol": "modbus", "item": "WELD-5", "address": 0, "value": True},
        {"event": "watchdog_trip", "plc": "PLC-3", "dropped": ["WELD-5"], "watchdog": 41,
         "unchanged_ms": lines[2]["unchanged_ms"]},
    ]
    assert 1000 <= lines[2]["unchanged_ms"] < 1200
    assert [type(entry) for entry in in_memory] == [ReceivedWrite, ReceivedWrite, WatchdogTrip]
    assert [msgspec.to_builtins(entry) for entry in in_memory] == lines


# OPC UA ------------------------------------------------------------------------------


def test_an_opcua_client_writes_an_enable_node_and_the_watchdog_node_that_modbus_then_reads():
    async def scenario() -> None:
        async with PlcSimulator([plc3_row(opcua=True)]) as sim, modbus_client(sim) as modbus:
            async with Client(sim.opcua_endpoint("PLC-3"), timeout=5) as client:
                await client.get_node(PLC3_WATCHDOG).write_value(ua.DataValue(ua.Variant(7, ua.VariantType.UInt16)))
                await client.get_node(WELD5_ENABLE).write_value(ua.DataValue(ua.Variant(True, ua.VariantType.Boolean)))

                assert sim.enable("PLC-3", "WELD-5") and sim.watchdog("PLC-3") == 7
                assert [(w.protocol, w.item, w.node, w.value) for w in sim.writes()] == [
                    ("opcua", "watchdog", PLC3_WATCHDOG, 7), ("opcua", "WELD-5", WELD5_ENABLE, True)]
                assert (await modbus.read_coils(0, count=1, device_id=1)).bits[0] is True
                assert (await modbus.read_holding_registers(100, count=1, device_id=1)).registers == [7]

    asyncio.run(scenario())


def test_sign_and_encrypt_lets_a_client_with_a_trusted_certificate_write_and_refuses_any_other(tmp_path):
    server = generate_self_signed_certificate(tmp_path, "plc-sim", "urn:interlock:plc-sim")
    trusted = generate_self_signed_certificate(tmp_path, "interlock", "urn:interlock:test-client")
    stranger = generate_self_signed_certificate(tmp_path, "stranger", "urn:interlock:stranger")

    async def secured_client(endpoint: str, pair) -> Client:
        client = Client(endpoint, timeout=5)
        client.application_uri = pair.application_uri
        await client.set_security(SecurityPolicyBasic256Sha256, str(pair.certificate), str(pair.private_key),
                                  server_certificate=str(server.certificate),
                                  mode=ua.MessageSecurityMode.SignAndEncrypt)
        return client

    async def scenario() -> None:
        security = OpcuaSecurity(server.certificate, server.private_key, (trusted.certificate,))
        async with PlcSimulator([plc3_row(modbus=False, opcua=True)], opcua_security=security) as sim:
            async with await secured_client(sim.opcua_endpoint("PLC-3"), trusted) as client:
                await client.get_node(WELD5_ENABLE).write_value(ua.DataValue(ua.Variant(True, ua.VariantType.Boolean)))
            with pytest.raises(ua.UaStatusCodeError, match="BadCertificateUntrusted"):
                async with await secured_client(sim.opcua_endpoint("PLC-3"), stranger):
                    pass

            assert [(w.protocol, w.item, w.value) for w in sim.writes()] == [("opcua", "WELD-5", True)]

    asyncio.run(scenario())


# Outages and plc.state ----------------------------------------------------------------


def test_go_offline_refuses_connections_and_go_online_restores_them_with_the_state_kept():
    async def scenario() -> None:
        async with PlcSimulator([plc3_row(opcua=True)]) as sim:
            async with modbus_client(sim) as client:
                await client.write_register(100, 7, device_id=1)
                await client.write_coil(0, True, device_id=1)
            host, port, _unit = sim.modbus_address("PLC-3")
            endpoint = sim.opcua_endpoint("PLC-3")

            await sim.go_offline("PLC-3")
            offline = AsyncModbusTcpClient(host, port=port, timeout=1, retries=0)
            modbus_refused = not await offline.connect()
            with pytest.raises(ConnectionRefusedError):
                async with Client(endpoint, timeout=2):
                    pass
            await sim.go_online("PLC-3")

            assert modbus_refused
            assert (sim.modbus_address("PLC-3"), sim.opcua_endpoint("PLC-3")) == ((host, port, 1), endpoint)
            async with modbus_client(sim) as client:  # well within the watchdog's 1 s: the enable is still held
                assert (await client.read_coils(0, count=1, device_id=1)).bits[0] is True
            async with Client(endpoint, timeout=5) as opcua:
                assert await opcua.get_node(PLC3_WATCHDOG).read_value() == 7

    asyncio.run(scenario())


def test_power_tags_follow_the_enable_in_the_published_plc_state():
    published: list[tuple[str, str, dict]] = []
    initial = {"PLC-3": {"WELD-5.power": True, "FAN-2.running": True, "V-101.isolated": True}}

    async def scenario() -> None:
        def publish(topic: str, key: str, value: bytes) -> None:
            published.append((topic, key, json.loads(value)))

        async with PlcSimulator([plc3_row()], tags=initial, publish=publish) as sim, modbus_client(sim) as client:
            async with live_watchdog(client):
                await client.write_coil(0, True, device_id=1)
                await client.write_coil(0, False, device_id=1)

    asyncio.run(scenario())

    assert [(topic, key) for topic, key, _ in published] == [("plc.state", "PLC-3")] * 3
    assert [list(state) for _, _, state in published] == [["plc", "ts", "seq", "tags"]] * 3
    assert [state["seq"] for _, _, state in published] == [0, 1, 2]
    assert [state["tags"] for _, _, state in published] == [
        {"WELD-5.power": False, "FAN-2.running": True, "V-101.isolated": True},
        {"WELD-5.power": True, "FAN-2.running": True, "V-101.isolated": True},
        {"WELD-5.power": False, "FAN-2.running": True, "V-101.isolated": True},
    ]
