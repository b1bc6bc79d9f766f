"""The PLC writers hold each PLC's enables at the interlock's decisions and keep its watchdog alive, against real Modbus TCP and OPC UA servers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import msgspec
import pytest
from asyncua import Server as OpcuaServer
from asyncua import ua
from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from dataflows.plc_link import (
    MODBUS,
    OPCUA,
    WATCHDOG_ITEM,
    PlcLinkConfig,
    PlcLinks,
    next_watchdog_value,
    target_of,
)
from dataflows.plc_opcua_link import OpcuaSecurity
from schemas.payloads import DeviceRow, ModbusLink, OpcuaLink

UNIT = 7
WELD_COIL, FAN_COIL, WATCHDOG_REGISTER = 0, 1, 100
WELD_NODE, FAN_NODE, WATCHDOG_NODE = "ns=2;s=PLC3.WELD5.Enable", "ns=2;s=PLC3.FAN2.Enable", "ns=2;s=PLC3.Watchdog"
PLC_URI, CLIENT_URI = "urn:interlock-tests:plc3", "urn:interlock-tests:interlock"


# Real servers on a loop of their own ---------------------------------------------


class ServerLoop:
    """An asyncio loop in a thread, so the servers keep serving while the tests poll synchronously."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test servers", daemon=True)
        self.thread.start()

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class ModbusPlc:
    """pymodbus's Modbus TCP server as a PLC with device id UNIT: coils 0-15, holding registers 0-199; records every write."""

    def __init__(self, servers: ServerLoop) -> None:
        self.servers = servers
        self.server: ModbusTcpServer | None = None
        self.port = 0
        self.writes: list[tuple[float, int, int, int]] = []

    def start(self) -> None:
        """Serves on a free ephemeral port the first time, on the same port when restarted (a fresh PLC memory)."""
        self.writes = writes = []

        async def record(function_code, start_address, address, count, registers, values):
            if values is not None:
                writes.append((time.monotonic(), function_code, address, int(values[0])))

        device = SimDevice(
            id=UNIT,
            simdata=(
                [SimData(0, count=16, values=False, datatype=DataType.BITS)],
                [SimData(0, values=False, datatype=DataType.BITS)],
                [SimData(0, count=200, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, values=0, datatype=DataType.REGISTERS)],
            ),
            action=record,
        )

        async def serve() -> int:
            self.server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
            await self.server.serve_forever(background=True)
            return self.server.transport.sockets[0].getsockname()[1]

        self.port = self.servers.run(serve())

    def stop(self) -> None:
        if self.server is not None:
            self.servers.run(self.server.shutdown())
            self.server = None

    def coil_writes(self, address: int) -> list[int]:
        return [value for _, code, at, value in list(self.writes) if code == 5 and at == address]

    def coil(self, address: int) -> int | None:
        """The coil's value as last written by the interlock (None: never written)."""
        writes = self.coil_writes(address)
        return writes[-1] if writes else None

    def watchdog_writes(self) -> list[tuple[float, int]]:
        return [(t, value) for t, code, at, value in list(self.writes) if code == 6 and at == WATCHDOG_REGISTER]


class OpcuaPlc:
    """asyncua's server as a PLC with Boolean enable nodes and a UInt16 watchdog node, offering security None and Basic256Sha256 SignAndEncrypt."""

    def __init__(self, servers: ServerLoop, certificate: bytes, key: bytes) -> None:
        self.servers = servers
        self.server = OpcuaServer()

        async def serve() -> int:
            server = self.server
            await server.init()
            server.set_endpoint("opc.tcp://127.0.0.1:0/plc3")
            await server.load_certificate(certificate, "pem")
            await server.load_private_key(key, None, "pem")
            await server.set_application_uri(PLC_URI)
            server.set_security_policy(
                [ua.SecurityPolicyType.NoSecurity, ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt]
            )
            namespace = await server.register_namespace("urn:interlock-tests:plc3:tags")
            assert namespace == 2
            for node, value, kind in (
                (WELD_NODE, False, ua.VariantType.Boolean),
                (FAN_NODE, False, ua.VariantType.Boolean),
                (WATCHDOG_NODE, 0, ua.VariantType.UInt16),
            ):
                variable = await server.nodes.objects.add_variable(ua.NodeId.from_string(node), node, value, varianttype=kind)
                await variable.set_writable()
            await server.start()
            return server.bserver.port

        self.port = servers.run(serve())
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/plc3"

    def value(self, node: str):
        return self.servers.run(self.server.get_node(node).read_value())

    def set(self, node: str, value, kind: ua.VariantType) -> None:
        self.servers.run(self.server.get_node(node).write_value(ua.Variant(value, kind)))

    def stop(self) -> None:
        self.servers.run(self.server.stop())


def application_certificate(uri: str, usage) -> tuple[bytes, bytes]:
    key = cert_gen.generate_private_key()
    names = [x509.UniformResourceIdentifier(uri), x509.DNSName("localhost"), x509.DNSName(socket.gethostname())]
    certificate = cert_gen.generate_self_signed_app_certificate(key, uri, {}, names, [usage])
    return certificate.public_bytes(serialization.Encoding.PEM), cert_gen.dump_private_key_as_pem(key)


@pytest.fixture(scope="module")
def servers() -> Iterator[ServerLoop]:
    loop = ServerLoop()
    yield loop
    loop.close()


@pytest.fixture
def modbus_plc(servers: ServerLoop) -> Iterator[ModbusPlc]:
    plc = ModbusPlc(servers)
    plc.start()
    yield plc
    plc.stop()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> dict[str, str]:
    """PEM files: the PLC's certificate and key, the interlock's, and a stranger's certificate that the PLC does not hold."""
    folder = tmp_path_factory.mktemp("pki")
    files = {}
    for name, uri, usage in (
        ("plc", PLC_URI, ExtendedKeyUsageOID.SERVER_AUTH),
        ("interlock", CLIENT_URI, ExtendedKeyUsageOID.CLIENT_AUTH),
        ("stranger", "urn:interlock-tests:stranger", ExtendedKeyUsageOID.SERVER_AUTH),
    ):
        certificate, key = application_certificate(uri, usage)
        (folder / f"{name}.pem").write_bytes(certificate)
        (folder / f"{name}.key").write_bytes(key)
        files[name], files[f"{name}_key"] = str(folder / f"{name}.pem"), str(folder / f"{name}.key")
    return files


@pytest.fixture(scope="module")
def opcua_plc(servers: ServerLoop, certificates: dict[str, str]) -> Iterator[OpcuaPlc]:
    with open(certificates["plc"], "rb") as certificate, open(certificates["plc_key"], "rb") as key:
        plc = OpcuaPlc(servers, certificate.read(), key.read())
    yield plc
    plc.stop()


# The interlock side ----------------------------------------------------------------


class Callbacks:
    """Collects what PlcLinks reports."""

    def __init__(self) -> None:
        self.links: list[tuple[str, bool, str]] = []
        self.writes: list[tuple[str, str, float, bool]] = []
        self.written: dict[str, float] = {}
        self.unmapped: list[tuple[str, str]] = []

    def hooks(self) -> dict[str, Callable]:
        return {
            "on_link": lambda plc, up, detail: self.links.append((plc, up, detail)),
            "on_write": lambda plc, item, seconds, ok: self.writes.append((plc, item, seconds, ok)),
            "on_command_written": lambda command, plc, seconds: self.written.__setitem__(command, seconds),
            "on_unmapped": lambda command, equipment: self.unmapped.append((command, equipment)),
        }

    def link_states(self) -> list[bool]:
        return [up for _, up, _ in self.links]


def modbus_row(port: int) -> DeviceRow:
    return DeviceRow(
        device="PLC-3",
        family="plc",
        equipment=["WELD-5", "FAN-2"],
        modbus=ModbusLink("127.0.0.1", port, UNIT, {"WELD-5": WELD_COIL, "FAN-2": FAN_COIL}, WATCHDOG_REGISTER),
    )


def opcua_row(endpoint: str, modbus_port: int | None = None) -> DeviceRow:
    modbus = None if modbus_port is None else modbus_row(modbus_port).modbus
    opcua = OpcuaLink(endpoint, {"WELD-5": WELD_NODE, "FAN-2": FAN_NODE}, WATCHDOG_NODE)
    return DeviceRow(device="PLC-3", family="plc", equipment=["WELD-5", "FAN-2"], modbus=modbus, opcua=opcua)


def command(command_id: str, kind: str, *targets: str) -> dict:
    return {"id": command_id, "ts": 1795358656123, "kind": kind, "permit": "HW-113", "targets": list(targets),
            "reasons": [], "trigger": None, "zone": "TK-3"}


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.01)


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running(links: PlcLinks) -> Iterator[PlcLinks]:
    links.start()
    try:
        yield links
    finally:
        links.stop()


# Specifications ---------------------------------------------------------------------


def test_enable_writes_1_and_hard_stop_writes_0_to_the_equipments_coil_with_the_rows_unit_id(modbus_plc):
    seen = Callbacks()
    with running(PlcLinks([modbus_row(modbus_plc.port)], **seen.hooks())) as links:
        links.apply(command("c1", "ENABLE", "WELD-5"))
        wait_until(lambda: "c1" in seen.written, "ENABLE written")
        assert modbus_plc.coil(WELD_COIL) == 1
        links.apply(command("c2", "HARD_STOP", "WELD-5"))
        wait_until(lambda: "c2" in seen.written, "HARD_STOP written")
    assert modbus_plc.coil(WELD_COIL) == 0
    assert modbus_plc.coil(FAN_COIL) == 0


def test_on_connecting_every_enable_nothing_has_decided_is_written_0(modbus_plc):
    with running(PlcLinks([modbus_row(modbus_plc.port)])):
        wait_until(lambda: modbus_plc.coil(WELD_COIL) == 0 and modbus_plc.coil(FAN_COIL) == 0, "both enables written 0")


def test_alert_writes_nothing(modbus_plc):
    seen = Callbacks()
    with running(PlcLinks([modbus_row(modbus_plc.port)], **seen.hooks())) as links:
        links.apply(command("a1", "ALERT", "WELD-5"))
        links.apply(command("c1", "HARD_STOP", "FAN-2"))
        wait_until(lambda: "c1" in seen.written, "the HARD_STOP after the ALERT written")
    assert "a1" not in seen.written
    assert modbus_plc.coil(WELD_COIL) == 0


def test_watchdog_register_increments_at_most_250_ms_apart(modbus_plc):
    with running(PlcLinks([modbus_row(modbus_plc.port)])):
        wait_until(lambda: len(modbus_plc.watchdog_writes()) >= 5, "five watchdog writes")
    beats = modbus_plc.watchdog_writes()
    assert [value for _, value in beats] == list(range(1, len(beats) + 1))
    assert max(later - earlier for (earlier, _), (later, _) in zip(beats, beats[1:])) <= 0.250


def test_watchdog_value_wraps_from_65535_to_0():
    assert next_watchdog_value(65534) == 65535
    assert next_watchdog_value(65535) == 0


def test_watchdog_age_is_measured_per_plc(modbus_plc):
    links = PlcLinks([modbus_row(modbus_plc.port)])
    assert links.watchdog_age_s("PLC-3") == float("inf")
    with running(links):
        wait_until(lambda: links.watchdog_age_s("PLC-3") < 0.25, "a fresh watchdog")
    with pytest.raises(KeyError, match="PLC-9"):
        links.watchdog_age_s("PLC-9")


def test_a_repeated_command_id_is_ignored(modbus_plc):
    seen = Callbacks()
    with running(PlcLinks([modbus_row(modbus_plc.port)], **seen.hooks())) as links:
        links.apply(command("c1", "ENABLE", "WELD-5"))
        links.apply(command("c2", "HARD_STOP", "WELD-5"))
        links.apply(command("c1", "ENABLE", "WELD-5"))
        links.apply(command("c3", "HARD_STOP", "FAN-2"))  # written after anything the repeat would have caused
        wait_until(lambda: "c3" in seen.written, "the command after the repeat written")
    assert modbus_plc.coil(WELD_COIL) == 0


def test_each_write_reports_its_latency_and_each_command_its_completion(modbus_plc):
    seen = Callbacks()
    with running(PlcLinks([modbus_row(modbus_plc.port)], **seen.hooks())) as links:
        links.apply(command("c1", "ENABLE", "WELD-5", "FAN-2"))
        wait_until(lambda: "c1" in seen.written, "ENABLE written")
        wait_until(lambda: any(item == WATCHDOG_ITEM and ok for _, item, _, ok in seen.writes), "a watchdog write")
    enable_writes = [(item, ok) for _, item, _, ok in seen.writes if item != WATCHDOG_ITEM]
    assert set(enable_writes) == {("FAN-2", True), ("WELD-5", True)}
    assert all(0 <= seconds < 1 for _, _, seconds, _ in seen.writes)
    assert 0 < seen.written["c1"] < 1


def test_modbus_socket_has_nagle_off(modbus_plc):
    with running(PlcLinks([modbus_row(modbus_plc.port)])) as links:
        wait_until(lambda: (status := links.status("PLC-3")) is not None and status.up, "link up")
        assert links.status("PLC-3").tcp_nodelay is True


def test_equipment_with_no_enable_on_any_plc_is_reported_not_fatal():
    seen = Callbacks()
    links = PlcLinks([modbus_row(unused_port())], **seen.hooks())
    links.apply(command("c1", "HARD_STOP", "PUMP-9", "WELD-5"))
    assert seen.unmapped == [("c1", "PUMP-9")]


def test_an_enable_decided_before_its_plc_row_arrives_is_written_when_the_row_arrives(modbus_plc):
    seen = Callbacks()
    with running(PlcLinks([], **seen.hooks())) as links:
        links.apply(command("c1", "ENABLE", "WELD-5"))
        assert seen.unmapped == [("c1", "WELD-5")]
        links.update_row(modbus_row(modbus_plc.port))
        wait_until(lambda: modbus_plc.coil(WELD_COIL) == 1, "the enable written once the row is known")


def test_a_row_that_moves_an_enable_gets_the_desired_state_written_to_the_new_coil_without_reconnecting(modbus_plc):
    seen = Callbacks()
    with running(PlcLinks([modbus_row(modbus_plc.port)], **seen.hooks())) as links:
        links.apply(command("c1", "ENABLE", "WELD-5"))
        wait_until(lambda: "c1" in seen.written, "ENABLE written")
        moved = msgspec.structs.replace(
            modbus_row(modbus_plc.port).modbus, enable_coils={"WELD-5": 2, "FAN-2": FAN_COIL}
        )
        links.update_row(msgspec.structs.replace(modbus_row(modbus_plc.port), modbus=moved))
        wait_until(lambda: modbus_plc.coil(2) == 1, "the enable written to its new coil")
        time.sleep(0.05)  # time for a reconnection to show, were there one
    assert seen.link_states() == [True]


def test_a_removed_plc_gets_no_more_watchdog_writes(modbus_plc):
    with running(PlcLinks([modbus_row(modbus_plc.port)])) as links:
        wait_until(lambda: len(modbus_plc.watchdog_writes()) >= 1, "a watchdog write")
        links.remove("PLC-3")
        wait_until(lambda: links.status("PLC-3") is None, "the link closed")
        time.sleep(0.05)  # a write already on the wire when the link closed
        beats = len(modbus_plc.watchdog_writes())
        time.sleep(0.3)
        assert len(modbus_plc.watchdog_writes()) == beats


def test_an_unreachable_plc_is_reported_down_once_while_retrying():
    seen = Callbacks()
    with running(PlcLinks([modbus_row(unused_port())], **seen.hooks())) as links:
        wait_until(lambda: links.status("PLC-3") is not None and links.status("PLC-3").attempts >= 3, "three attempts")
    assert seen.link_states() == [False]
    assert "127.0.0.1" in seen.links[0][2]


def test_a_plc_that_comes_back_gets_every_desired_enable_rewritten_then_is_reported_up(modbus_plc):
    seen = Callbacks()
    up_after = []
    hooks = seen.hooks()
    hooks["on_link"] = lambda plc, up, detail: (
        seen.links.append((plc, up, detail)),
        up_after.append((modbus_plc.coil_writes(WELD_COIL), modbus_plc.coil_writes(FAN_COIL), len(modbus_plc.watchdog_writes()))),
    )
    with running(PlcLinks([modbus_row(modbus_plc.port)], **hooks)) as links:
        links.apply(command("c1", "ENABLE", "WELD-5", "FAN-2"))
        wait_until(lambda: "c1" in seen.written, "ENABLE written")
        modbus_plc.stop()
        wait_until(lambda: seen.link_states() == [True, False], "down reported")
        links.apply(command("c2", "HARD_STOP", "WELD-5"))
        links.apply(command("c3", "ENABLE", "WELD-5"))
        links.apply(command("c4", "HARD_STOP", "WELD-5"))
        wait_until(lambda: links.status("PLC-3").attempts >= 1, "a retry while down")
        modbus_plc.start()
        wait_until(lambda: seen.link_states() == [True, False, True], "up reported again")
        wait_until(lambda: "c4" in seen.written, "the command taken while down written after reconnection")
    weld, fan, beats = up_after[-1]
    assert (weld, fan) == ([0], [1])  # the desired state, once each: nothing queued per command
    assert beats >= 1


def test_opcua_enable_node_is_written_when_opcua_is_preferred(opcua_plc):
    opcua_plc.set(WELD_NODE, False, ua.VariantType.Boolean)
    seen = Callbacks()
    rows = [opcua_row(opcua_plc.endpoint, modbus_port=unused_port())]
    with running(PlcLinks(rows, {"prefer": OPCUA}, **seen.hooks())) as links:
        links.apply(command("c1", "ENABLE", "WELD-5"))
        wait_until(lambda: "c1" in seen.written, "ENABLE written")
        assert opcua_plc.value(WELD_NODE) is True
        first = opcua_plc.value(WATCHDOG_NODE)
        wait_until(lambda: opcua_plc.value(WATCHDOG_NODE) != first, "the watchdog node changing")
        links.apply(command("c2", "HARD_STOP", "WELD-5"))
        wait_until(lambda: "c2" in seen.written, "HARD_STOP written")
        assert opcua_plc.value(WELD_NODE) is False
    assert seen.link_states() == [True]


def test_opcua_sign_and_encrypt_writes_with_the_interlocks_certificate(opcua_plc, certificates):
    opcua_plc.set(FAN_NODE, False, ua.VariantType.Boolean)
    security = {"policy": "Basic256Sha256", "certificate": certificates["interlock"],
                "private_key": certificates["interlock_key"], "server_certificate": certificates["plc"]}
    seen = Callbacks()
    with running(PlcLinks([opcua_row(opcua_plc.endpoint)], {"opcua_security": security}, **seen.hooks())) as links:
        links.apply(command("c1", "ENABLE", "FAN-2"))
        wait_until(lambda: "c1" in seen.written, "ENABLE written")
        wait_until(lambda: seen.link_states() == [True], "the link reported up")
    assert opcua_plc.value(FAN_NODE) is True


def test_opcua_plc_whose_certificate_is_not_the_pinned_one_is_down(opcua_plc, certificates):
    security = {"policy": "Basic256Sha256", "certificate": certificates["interlock"],
                "private_key": certificates["interlock_key"], "server_certificate": certificates["stranger"]}
    seen = Callbacks()
    with running(PlcLinks([opcua_row(opcua_plc.endpoint)], {"opcua_security": security}, **seen.hooks())):
        wait_until(lambda: seen.links, "a link report")
    assert seen.link_states() == [False]


def test_a_row_with_both_links_uses_modbus_unless_opcua_is_preferred():
    row = opcua_row("opc.tcp://127.0.0.1:4840/plc3", modbus_port=5020)
    assert target_of(row, PlcLinkConfig()).protocol == MODBUS
    assert target_of(row, PlcLinkConfig(prefer=OPCUA)).protocol == OPCUA


def test_a_watchdog_period_above_250_ms_is_refused():
    with pytest.raises(ValueError, match=r"watchdog_period_ms=300 .*250 ms"):
        PlcLinkConfig(watchdog_period_ms=300)
    with pytest.raises(msgspec.ValidationError, match=r"watchdog_period_ms=251 .*250 ms"):
        PlcLinks([], {"watchdog_period_ms": 251})


def test_basic256sha256_without_its_certificates_is_refused():
    with pytest.raises(ValueError, match="server_certificate"):
        OpcuaSecurity(policy="Basic256Sha256", certificate="a.pem", private_key="a.key")
