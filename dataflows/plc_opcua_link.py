"""OPC UA writer of one PLC (protocols §4): enables are Boolean nodes, the watchdog a UInt16 node; security None or Basic256Sha256 SignAndEncrypt."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

import msgspec
from asyncua import Client
from asyncua import ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.crypto.uacrypto import CertProperties
from cryptography import x509

from schemas.payloads import OpcuaLink


class OpcuaSecurity(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """OPC UA channel security: "None", or Basic256Sha256 SignAndEncrypt with the interlock's certificate and key and the PLC's pinned certificate (PEM or DER paths).

    `application_uri` defaults to the URI in the interlock certificate's subjectAltName, which servers check against it.
    """

    policy: Literal["None", "Basic256Sha256"] = "None"
    certificate: str | None = None
    private_key: str | None = None
    private_key_password: str | None = None
    server_certificate: str | None = None
    application_uri: str | None = None

    def __post_init__(self) -> None:
        if self.policy == "Basic256Sha256":
            missing = [name for name in ("certificate", "private_key", "server_certificate") if getattr(self, name) is None]
            if missing:
                raise ValueError(
                    f"OPC UA policy Basic256Sha256 is missing {', '.join(missing)}: give the paths of the interlock's "
                    "certificate, its private key and the PLC's server certificate"
                )


class OpcuaEnableWriter:
    """Writes enables and the watchdog of one PLC over one OPC UA session.

    asyncua's own reconnection is off, for the same reason as in the Modbus writer: a reconnection must rewrite
    every desired enable. `on_lost` is called when asyncua notices the connection dropped.
    """

    tcp_nodelay = None

    def __init__(
        self,
        link: OpcuaLink,
        security: OpcuaSecurity,
        *,
        connect_timeout_s: float,
        write_timeout_s: float,
        on_lost: Callable[[], None],
    ) -> None:
        self.link = link
        self.security = security
        self.connect_timeout_s = connect_timeout_s
        self.write_timeout_s = write_timeout_s
        self.on_lost = on_lost
        self.client: Client | None = None
        self._lost = False

    def retarget(self, link: OpcuaLink) -> None:
        """New NodeIds on the same endpoint."""
        self.link = link

    async def connect(self) -> None:
        await self.close()
        client = Client(self.link.endpoint, timeout=self.write_timeout_s)
        security = self.security
        if security.policy == "Basic256Sha256":
            assert security.certificate and security.private_key and security.server_certificate
            client.application_uri = security.application_uri or certificate_application_uri(security.certificate)
            await client.set_security(
                SecurityPolicyBasic256Sha256,
                key_material(security.certificate),
                key_material(security.private_key, security.private_key_password),
                server_certificate=key_material(security.server_certificate),
                mode=ua.MessageSecurityMode.SignAndEncrypt,
            )
        self.client = client
        self._lost = False

        async def connection_lost(error: Exception) -> None:
            if client is self.client:
                self._lost = True
                self.on_lost()

        client.connection_lost_callback = connection_lost
        async with asyncio.timeout(self.connect_timeout_s):
            await client.connect()

    def ensure_connected(self) -> None:
        if self.client is None or self._lost:
            raise ConnectionError(f"OPC UA session with {self.link.endpoint} lost")

    def _connected_client(self) -> Client:
        self.ensure_connected()
        assert self.client is not None
        return self.client

    async def write_enable(self, equipment: str, value: bool) -> None:
        node = self._connected_client().get_node(self.link.enable_nodes[equipment])
        await node.write_value(ua.Variant(value, ua.VariantType.Boolean))

    async def write_watchdog(self, value: int) -> None:
        node = self._connected_client().get_node(self.link.watchdog_node)
        await node.write_value(ua.Variant(value, ua.VariantType.UInt16))

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            async with asyncio.timeout(self.write_timeout_s):
                await client.disconnect()
        except Exception:  # a dead server cannot close the session; dropping the socket is all that is left
            client.disconnect_socket()


def key_material(path: str, password: str | None = None) -> CertProperties:
    """A certificate or key file for asyncua, PEM or DER told by its content: asyncua goes by the suffix and reads a `.key` or `.crt` PEM file as DER."""
    with open(path, "rb") as handle:
        content = handle.read()
    return CertProperties(content, "pem" if content.lstrip().startswith(b"-----BEGIN") else "der", password)


def certificate_application_uri(path: str) -> str:
    """The application URI in a certificate's subjectAltName (PEM or DER file)."""
    with open(path, "rb") as handle:
        content = handle.read()
    try:
        certificate = x509.load_pem_x509_certificate(content)
    except ValueError:
        certificate = x509.load_der_x509_certificate(content)
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    if not uris:
        raise ValueError(
            f"certificate {path} has no URI in its subjectAltName; set opcua_security.application_uri or reissue the certificate"
        )
    return uris[0]
