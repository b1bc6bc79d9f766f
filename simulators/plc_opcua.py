"""The OPC UA face of a simulated PLC: an asyncua server with a Boolean enable node per item and a UInt16 watchdog node.

The nodes carry exactly the NodeIds of the CMDB row (`ns=2;s=PLC3.WELD5.Enable`): the
namespaces are registered in order, so index 2 is the first one after the server's own. They
sit in an object named after the PLC under Objects, and every client may write them. A write
must carry the node's type (Boolean, UInt16) or it is refused with BadTypeMismatch, as on a
real PLC. Accepted writes go to the simulator's memory (`simulators.plc_sim`); a change made
elsewhere (a Modbus write, a watchdog trip) is written back into the node, so clients that
read or subscribe see it.

Security is None unless a certificate and key are given; then only Basic256Sha256
SignAndEncrypt is offered (a PLC that asks for security does not also take plain writes), and,
when trusted client certificates are given, a client presenting any other certificate is
refused with BadCertificateUntrusted. Without that list every client certificate is accepted.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from asyncua import Server, ua
from asyncua.common.callback import CallbackService, CallbackType, ServerItemCallback
from asyncua.common.utils import ServiceError
from asyncua.crypto import uacrypto
from asyncua.server.binary_server_asyncio import BinaryServer
from cryptography import x509
from msgspec import Struct

from schemas.payloads import OpcuaLink
from simulators.plc_sim import WATCHDOG

if TYPE_CHECKING:
    from simulators.plc_sim import PlcSimulator

logger = logging.getLogger(__name__)

DEFAULT_PORT = 4840


class OpcuaSecurity(Struct, frozen=True):
    """Basic256Sha256 SignAndEncrypt: server certificate and key (PEM or DER), and the client certificates it trusts."""

    certificate: Path
    private_key: Path
    trusted_clients: tuple[Path, ...] = ()


class OpcuaNode(Struct, frozen=True):
    """A node the simulator serves: the item it stands for and the NodeId exactly as the CMDB row writes it."""

    item: str
    node: str


def parse_node_id(plc: str, item: str, text: str) -> ua.NodeId:
    """The NodeId of a row's node string; ValueError naming the node when it cannot be served."""
    try:
        node_id = ua.NodeId.from_string(text)
    except (ValueError, ua.UaError) as error:
        raise ValueError(f"{plc}: OPC UA node {text!r} of {item} is not a NodeId ({error}); "
                         "write it as ns=<index>;s=<name> or ns=<index>;i=<number>") from error
    if node_id.NamespaceIndex == 0:
        raise ValueError(f"{plc}: OPC UA node {text!r} of {item} is in namespace 0, which belongs to the OPC UA "
                         "standard; put the PLC's nodes in ns=1 or above")
    return node_id


def check_opcua_link(plc: str, link: OpcuaLink) -> list[str]:
    """Every problem that keeps `link` from being served, each naming the value and the fix; empty when it can be."""
    problems = []
    parts = urlsplit(link.endpoint)
    if parts.scheme != "opc.tcp" or not parts.hostname:
        problems.append(f"{plc}: OPC UA endpoint {link.endpoint!r} is not opc.tcp://host:port/path")
    else:
        try:
            parts.port
        except ValueError:
            problems.append(f"{plc}: OPC UA endpoint {link.endpoint!r} has no valid port; use opc.tcp://host:4840/...")
    seen: dict[ua.NodeId, str] = {}
    items = [*link.enable_nodes.items(), (WATCHDOG, link.watchdog_node)]
    for item, text in items:
        try:
            node_id = parse_node_id(plc, item, text)
        except ValueError as error:
            problems.append(str(error))
            continue
        if node_id in seen:
            problems.append(f"{plc}: OPC UA node {text!r} is given to both {seen[node_id]} and {item}; "
                            "give each its own node")
        seen[node_id] = item
    return problems


def check_opcua_security(security: OpcuaSecurity) -> list[str]:
    """Every file of `security` that is missing, each naming the file and the fix; empty when all exist."""
    files = [("certificate", security.certificate), ("private key", security.private_key),
             *(("trusted client certificate", path) for path in security.trusted_clients)]
    return [f"OPC UA {kind} {path} does not exist; give the path of an existing PEM or DER file"
            for kind, path in files if not Path(path).is_file()]


def _fingerprint(certificate: x509.Certificate) -> bytes:
    return hashlib.sha256(uacrypto.der_from_x509(certificate)).digest()


class OpcuaPlc:
    """One PLC's OPC UA server at its endpoint; its address space is built once and survives going offline."""

    def __init__(self, simulator: PlcSimulator, plc: str, link: OpcuaLink, security: OpcuaSecurity | None) -> None:
        self._simulator = simulator
        self._plc = plc
        self._link = link
        self._security = security
        parts = urlsplit(link.endpoint)
        self._host = parts.hostname or ""
        self._port = parts.port if parts.port is not None else DEFAULT_PORT
        self._nodes: dict[ua.NodeId, OpcuaNode] = {}
        for equipment, text in link.enable_nodes.items():
            self._nodes[parse_node_id(plc, equipment, text)] = OpcuaNode(equipment, text)
        self._nodes[parse_node_id(plc, WATCHDOG, link.watchdog_node)] = OpcuaNode(WATCHDOG, link.watchdog_node)
        self._ids = {node.item: node_id for node_id, node in self._nodes.items()}
        self._server: Server | None = None
        self._listening = False

    @property
    def endpoint(self) -> str:
        """The endpoint URL clients use, with the port actually served (the row's, or the chosen one for port 0)."""
        parts = urlsplit(self._link.endpoint)
        return urlunsplit((parts.scheme, f"{self._host}:{self._port}", parts.path, parts.query, parts.fragment))

    @property
    def security(self) -> str:
        return "Basic256Sha256 SignAndEncrypt" if self._security else "None"

    async def open(self) -> None:
        """Listen at the endpoint (the same port again after `close`); OSError when it cannot."""
        if self._server is None:
            self._server = await self._build()
            try:
                await self._server.start()
            except OSError as error:
                raise OSError(f"{self._plc}: cannot listen for OPC UA on {self._host}:{self._port} ({error}); "
                              "free the port or change the PLC row's opcua endpoint") from error
        else:
            # Server.start() would add its endpoints a second time; a fresh socket server on the
            # same internal server (address space, sessions, policies) is what a PLC coming back is.
            server = self._server
            listener = BinaryServer(server.iserver, self._host, self._port, server.limits)
            listener.set_policies(server._policies)
            try:
                await listener.start()
            except OSError as error:
                raise OSError(f"{self._plc}: cannot listen again for OPC UA on {self._host}:{self._port} ({error}); "
                              "free the port") from error
            server.bserver = listener
        assert self._server.bserver is not None
        self._port = self._server.bserver.port or self._port
        self._listening = True

    async def close(self) -> None:
        """Stop listening and close every client connection; the address space and its values stay."""
        if self._server is not None and self._server.bserver is not None and self._listening:
            await self._server.bserver.stop()
            self._server.bserver = None
        self._listening = False

    async def stop(self) -> None:
        """Shut the server down for good."""
        await self.close()
        if self._server is not None:
            await self._server.stop()
            self._server = None

    async def show(self, item: str, value: bool | int) -> None:
        """Write a value the PLC now holds into its node, as the PLC's own program would (no client callback)."""
        if self._server is None or item not in self._ids:
            return
        variant = ua.Variant(value, ua.VariantType.UInt16 if item == WATCHDOG else ua.VariantType.Boolean)
        await self._server.write_attribute_value(self._ids[item], ua.DataValue(variant))

    async def _build(self) -> Server:
        """A server with this PLC's namespaces and nodes, its security and the write hook; not yet listening."""
        server = Server()
        await server.init()
        server.disable_clock()  # the 1 s clock task would make every stop wait up to 1 s
        server.set_server_name(f"{self._plc} (interlock PLC simulator)")
        server.set_identity_tokens([ua.AnonymousIdentityToken])  # the channel is what security protects here
        application_uri = f"urn:interlock:plc-sim:{self._plc}"
        if self._security is not None:
            security = self._security
            try:
                await server.load_certificate(str(security.certificate))
                await server.load_private_key(str(security.private_key))
                trusted = {_fingerprint(await uacrypto.load_certificate(str(path)))
                           for path in security.trusted_clients}
            except ValueError as error:
                raise OSError(f"{self._plc}: cannot load the OPC UA certificate {security.certificate}, key "
                              f"{security.private_key} or trusted certificates ({error}); give PEM (.pem) or DER "
                              "files, the key unencrypted") from error
            application_uri = _certificate_uri(server.iserver.certificate) or application_uri
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            if trusted:
                server.set_certificate_validator(_trusted_only(self._plc, trusted))
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        await server.set_application_uri(application_uri)
        server.set_endpoint(self.endpoint)
        highest = max(node_id.NamespaceIndex for node_id in self._nodes)
        namespaces = await server.get_namespace_array()
        while len(namespaces) <= highest:
            index = await server.register_namespace(f"urn:interlock:plc-sim:{self._plc}:ns{len(namespaces)}")
            namespaces = await server.get_namespace_array()
            assert index == len(namespaces) - 1, f"namespace {index} registered twice"
        lowest = min(node_id.NamespaceIndex for node_id in self._nodes)
        folder = await server.nodes.objects.add_object(lowest, self._plc)
        for node_id, node in self._nodes.items():
            if node.item == WATCHDOG:
                initial = ua.Variant(self._simulator.watchdog(self._plc), ua.VariantType.UInt16)
                name = "Watchdog"
            else:
                initial = ua.Variant(self._simulator.enable(self._plc, node.item), ua.VariantType.Boolean)
                name = f"{node.item}.Enable"
            variable = await folder.add_variable(node_id, ua.QualifiedName(name, node_id.NamespaceIndex), initial)
            await variable.set_writable()
        server.subscribe_server_callback(CallbackType.PostWrite, self._written)
        return server

    async def _written(self, event: ServerItemCallback, _dispatcher: CallbackService) -> None:
        """asyncua's hook after a client's Write: hand each accepted write of our nodes to the simulator."""
        if not event.is_external:
            return
        for write, status in zip(event.request_params.NodesToWrite, event.response_params):
            node = self._nodes.get(write.NodeId)
            if node is None or write.AttributeId != ua.AttributeIds.Value:
                continue
            if not status.is_good():
                logger.warning("%s refused an OPC UA write to %s: %s", self._plc, node.node, status.name)
                continue
            value = write.Value.Value.Value if write.Value and write.Value.Value else None
            if node.item == WATCHDOG:
                await self._simulator.receive_watchdog(self._plc, int(value or 0), "opcua", node=node.node)
            else:
                await self._simulator.receive_enable(self._plc, node.item, bool(value), "opcua", node=node.node)


def _certificate_uri(certificate: x509.Certificate | None) -> str | None:
    """The application URI in a certificate's subjectAltName, which the server must announce as its own."""
    if certificate is None:
        return None
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def _trusted_only(plc: str, trusted: set[bytes]):
    """A certificate validator that lets in only the client certificates whose SHA-256 is in `trusted`."""

    async def validate(certificate: x509.Certificate, application: ua.ApplicationDescription) -> None:
        if _fingerprint(certificate) not in trusted:
            logger.warning("%s refused OPC UA client %s: its certificate is not among the trusted ones",
                           plc, application.ApplicationUri)
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

    return validate
