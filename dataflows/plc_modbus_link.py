"""Modbus TCP writer of one PLC (protocols §4): enables are coils (FC05), the watchdog a holding register (FC06), addressed to the row's unit id."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from pymodbus.client import AsyncModbusTcpClient

from schemas.payloads import ModbusLink


class PlcWriteRefused(Exception):
    """The PLC answered a write with a Modbus exception: it does not hold that value, so the link counts as down."""


class ModbusEnableWriter:
    """Writes enables and the watchdog of one PLC over one Modbus TCP connection.

    pymodbus's own reconnection is off, and a write on a lost connection fails instead of letting pymodbus
    reconnect inside it: a silent reconnect would skip the rewrite of every desired enable that a reconnection
    needs. `on_lost` is called as soon as the connection drops, so the link need not wait for its next write.
    """

    def __init__(
        self, link: ModbusLink, *, connect_timeout_s: float, write_timeout_s: float, on_lost: Callable[[], None]
    ) -> None:
        self.link = link
        self.connect_timeout_s = connect_timeout_s
        self.write_timeout_s = write_timeout_s
        self.on_lost = on_lost
        self.client: AsyncModbusTcpClient | None = None
        self.tcp_nodelay: bool | None = None
        self._generation = 0
        self._lost = False

    def retarget(self, link: ModbusLink) -> None:
        """New coil and register addresses on the same host, port and unit."""
        self.link = link

    async def connect(self) -> None:
        await self.close()
        self._generation += 1
        self._lost = False
        generation = self._generation
        link = self.link
        # pymodbus uses `timeout` both to connect and to wait for each response.
        self.client = AsyncModbusTcpClient(
            link.host,
            port=link.port,
            timeout=self.write_timeout_s,
            retries=0,
            reconnect_delay=0,
            trace_connect=lambda connected: self._connection_changed(generation, connected),
        )
        async with asyncio.timeout(self.connect_timeout_s):
            connected = await self.client.connect()
        if not connected:
            raise ConnectionError(f"no Modbus TCP connection to {link.host}:{link.port} (refused or timed out)")
        self.tcp_nodelay = ensure_tcp_nodelay(self.client)

    def _connection_changed(self, generation: int, connected: bool) -> None:
        if not connected and generation == self._generation:
            self._lost = True
            self.on_lost()

    def ensure_connected(self) -> None:
        if self.client is None or self._lost or not self.client.connected:
            raise ConnectionError(f"Modbus TCP connection to {self.link.host}:{self.link.port} lost")

    def _connected_client(self) -> AsyncModbusTcpClient:
        self.ensure_connected()
        assert self.client is not None
        return self.client

    async def write_enable(self, equipment: str, value: bool) -> None:
        address = self.link.enable_coils[equipment]
        response = await self._connected_client().write_coil(address, value, device_id=self.link.unit)
        if response.isError():
            raise PlcWriteRefused(f"unit {self.link.unit} refused coil {address} ({equipment}) = {int(value)}: {response}")

    async def write_watchdog(self, value: int) -> None:
        address = self.link.watchdog_register
        response = await self._connected_client().write_register(address, value, device_id=self.link.unit)
        if response.isError():
            raise PlcWriteRefused(f"unit {self.link.unit} refused watchdog register {address} = {value}: {response}")

    async def close(self) -> None:
        self.tcp_nodelay = None
        if self.client is not None:
            self._generation += 1
            self.client.close()
            self.client = None


def ensure_tcp_nodelay(client: AsyncModbusTcpClient) -> bool | None:
    """Turns Nagle off on the client's socket if it is on, and says whether it is off now (None: no socket).

    pymodbus never sets TCP_NODELAY itself, but it connects through `loop.create_connection`, and asyncio sets
    TCP_NODELAY on every TCP socket it connects; so this normally only confirms the option.
    """
    transport = getattr(client.ctx, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return None
    if not sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
