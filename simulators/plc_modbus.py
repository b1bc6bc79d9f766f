"""The Modbus TCP face of a simulated PLC: pymodbus serving the enables as coils and the watchdog as a holding register.

The PLC's memory lives in the simulator (`simulators.plc_sim`), not in pymodbus: every request
goes through the device's `action` hook, which refreshes pymodbus's registers from that memory
before they are read and hands every accepted write to the simulator. So an enable written over
OPC UA, or dropped by the watchdog, is what the next Modbus read returns.

Addressing is the protocol's: coil and register numbers are the 0-based addresses on the wire,
exactly as the CMDB row gives them (`enable_coils`, `watchdog_register`). Only those addresses
are served: a write to any other coil or register, or a read of a register that is not the
watchdog, is answered with ILLEGAL ADDRESS (exception 2), as a PLC with a fixed I/O map would.
Reading a coil next to an enable (in the same 16-coil word) returns 0. A request for another
unit id than the row's is answered with exception 0x0B (gateway target failed to respond).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from schemas.payloads import ModbusLink

if TYPE_CHECKING:
    from simulators.plc_sim import PlcSimulator

logger = logging.getLogger(__name__)

COIL_FUNCTIONS = frozenset({1, 5, 15})
"""Read coils, write single coil, write multiple coils."""
HOLDING_FUNCTIONS = frozenset({3, 6, 16, 22, 23})
"""Read, write single, write multiple, mask write, read/write multiple holding registers."""
MAX_ADDRESS = 65535
MAX_UNIT = 255


def check_modbus_link(plc: str, link: ModbusLink) -> list[str]:
    """Every problem that keeps `link` from being served, each naming the value and the fix; empty when it can be."""
    problems = []
    if not 0 <= link.port <= 65535:
        problems.append(f"{plc}: modbus port {link.port} is not a TCP port; use 1-65535 (0 picks a free port)")
    if not 0 <= link.unit <= MAX_UNIT:
        problems.append(f"{plc}: modbus unit {link.unit} is outside 0-{MAX_UNIT}; use the PLC's unit id")
    if not 0 <= link.watchdog_register <= MAX_ADDRESS:
        problems.append(f"{plc}: watchdog_register {link.watchdog_register} is outside 0-{MAX_ADDRESS}")
    owners: dict[int, str] = {}
    for equipment, address in link.enable_coils.items():
        if not 0 <= address <= MAX_ADDRESS:
            problems.append(f"{plc}: enable coil {address} of {equipment} is outside 0-{MAX_ADDRESS}")
        elif address in owners:
            problems.append(f"{plc}: coil {address} is the enable of both {owners[address]} and {equipment}; "
                            "give each item of equipment its own coil")
        else:
            owners[address] = equipment
    return problems


class ModbusPlc:
    """One PLC's Modbus TCP server on its own host and port, answering for its unit id only."""

    def __init__(self, simulator: PlcSimulator, plc: str, link: ModbusLink) -> None:
        self._simulator = simulator
        self._plc = plc
        self._link = link
        self._coils = {address: equipment for equipment, address in link.enable_coils.items()}
        self._port = link.port
        self._server: ModbusTcpServer | None = None

    @property
    def host(self) -> str:
        return self._link.host

    @property
    def port(self) -> int:
        """The port served: the row's, or the one the system chose when the row says 0."""
        return self._port

    @property
    def unit(self) -> int:
        return self._link.unit

    def _devices(self) -> list[SimDevice]:
        """The pymodbus device (enable coils, watchdog register, nothing else) and a stand-in for other units."""
        devices = [SimDevice(id=self._link.unit, simdata=self._memory_map(), action=self._access)]
        if self._link.unit != 0:  # pymodbus sends requests for units it does not know to unit 0
            devices.append(SimDevice(id=0, simdata=self._memory_map(), action=self._other_unit))
        return devices

    def _memory_map(self) -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
        """Coils, discrete inputs, holding registers, input registers: addresses that exist, values pymodbus keeps."""
        coils = [SimData(address, values=[False], datatype=DataType.BITS) for address in sorted(self._coils)]
        return (
            coils or [SimData(0, values=[False], datatype=DataType.BITS)],
            [SimData(0, values=[False], datatype=DataType.BITS)],
            [SimData(self._link.watchdog_register, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, datatype=DataType.INVALID)],
        )

    async def open(self) -> None:
        """Listen on the row's host and port (the same port again after `close`); OSError when it cannot."""
        server = ModbusTcpServer(self._devices(), address=(self._link.host, self._port))
        try:
            await server.serve_forever(background=True)
        except RuntimeError as error:
            raise OSError(
                f"{self._plc}: cannot listen for Modbus TCP on {self._link.host}:{self._port} ({error}); "
                "free the port or change the PLC row's modbus host/port"
            ) from error
        self._server = server
        self._port = server.transport.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and drop every client connection, so clients see their connection refused."""
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    async def _access(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus's hook on every request: hand writes to the simulator, then show its memory in `registers`."""
        if function_code in COIL_FUNCTIONS:
            if set_values is not None:
                written = {address + offset: bool(value) for offset, value in enumerate(set_values)}
                strangers = sorted(set(written) - set(self._coils))
                if strangers:
                    logger.warning("%s refused a Modbus write to coil(s) %s: not an enable (enables: %s)",
                                   self._plc, strangers, self._link.enable_coils)
                    return ExcCodes.ILLEGAL_ADDRESS
                for coil, value in written.items():
                    await self._simulator.receive_enable(self._plc, self._coils[coil], value, "modbus", address=coil)
            self._show_coils(start_address, registers)
        elif function_code in HOLDING_FUNCTIONS:
            if set_values is not None:
                for offset, value in enumerate(set_values):
                    await self._simulator.receive_watchdog(self._plc, int(value), "modbus", address=address + offset)
            registers[self._link.watchdog_register - start_address] = self._simulator.watchdog(self._plc)
        return None

    async def _other_unit(self, function_code: int, *_request: object) -> ExcCodes:
        """A request for another unit id: answered as a gateway with no such device (exception 0x0B)."""
        logger.warning("%s refused a Modbus request (function %d) for a unit other than its unit %d",
                       self._plc, function_code, self._link.unit)
        return ExcCodes.GATEWAY_NO_RESPONSE

    def _show_coils(self, start_word: int, words: list[int]) -> None:
        """Set each enable's bit in pymodbus's coil words (16 coils a word, coil 0 in bit 0) from the simulator."""
        for coil, equipment in self._coils.items():
            word = coil // 16 - start_word
            if 0 <= word < len(words):
                bit = 1 << (coil % 16)
                if self._simulator.enable(self._plc, equipment):
                    words[word] |= bit
                else:
                    words[word] &= ~bit
