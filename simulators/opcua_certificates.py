"""Self-signed OPC UA application certificates for tests and demos of the PLC simulator.

A Basic256Sha256 SignAndEncrypt channel needs an RSA key pair and an X.509 certificate on each
side. On site these come from the plant's certificate authority; in development a self-signed
pair per application is enough. The certificate carries the application URI and the host names
in its subjectAltName, as OPC UA Part 6 asks, and is good both as a server and as a client
certificate, so the same function makes the simulator's and the test client's pairs.

```sh
python -m simulators.opcua_certificates certs/ --name plc-sim --uri urn:interlock:plc-sim
```
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
from collections.abc import Sequence
from pathlib import Path

from asyncua.crypto.cert_gen import dump_private_key_as_pem, generate_private_key, generate_self_signed_app_certificate
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from msgspec import Struct


def default_hosts() -> tuple[str, ...]:
    """localhost, 127.0.0.1 and this machine's name, which asyncua looks for in a server certificate."""
    return tuple(dict.fromkeys(("localhost", "127.0.0.1", socket.gethostname())))


class CertificatePair(Struct, frozen=True):
    """Where a generated certificate (PEM) and its unencrypted private key (PEM, PKCS#8) were written."""

    certificate: Path
    private_key: Path
    application_uri: str


def generate_self_signed_certificate(
    directory: str | Path,
    name: str,
    application_uri: str,
    hosts: Sequence[str] | None = None,
    days: int = 365,
) -> CertificatePair:
    """Write `<name>-cert.pem` and `<name>-key.pem` into `directory`: a fresh RSA-2048 key and a certificate for it.

    `hosts` (default: `default_hosts()`) become DNS or IP subjectAltNames; `application_uri` must be
    the URI the application announces (asyncua's `Client.application_uri`, the server's application URI).
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    for host in default_hosts() if hosts is None else hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    key = generate_private_key()
    certificate = generate_self_signed_app_certificate(
        key, name, {}, names, extended=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], days=days
    )
    pair = CertificatePair(folder / f"{name}-cert.pem", folder / f"{name}-key.pem", application_uri)
    pair.private_key.write_bytes(dump_private_key_as_pem(key))
    pair.private_key.chmod(0o600)
    pair.certificate.write_bytes(certificate.public_bytes(Encoding.PEM))
    return pair


def main(argv: list[str] | None = None) -> int:
    """Generate one pair and print where it went."""
    parser = argparse.ArgumentParser(prog="python -m simulators.opcua_certificates",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", help="folder to write <name>-cert.pem and <name>-key.pem into")
    parser.add_argument("--name", default="plc-sim", help="file name stem and certificate common name")
    parser.add_argument("--uri", default="urn:interlock:plc-sim", help="application URI the certificate is for")
    parser.add_argument("--host", action="append", help="host name or IP for subjectAltName (repeatable; "
                        "default localhost, 127.0.0.1 and this machine's name)")
    args = parser.parse_args(argv)
    pair = generate_self_signed_certificate(args.directory, args.name, args.uri, args.host)
    print(f"certificate {pair.certificate}\nprivate key {pair.private_key}\napplication URI {pair.application_uri}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
