"""A private certificate authority for the local stack (and small deployments): TLS on every listener.

`CertificateAuthority(directory)` keeps `ca.pem` (the certificate clients verify) and `ca.key` (mode
0600) in one folder and issues PEM certificates signed by it:

- `server(name, hosts)`: a server certificate whose subject alternative names are `localhost`,
  `127.0.0.1`, `::1` and the given host names / addresses (Mosquitto, Kafka, the alerting API);
- `client(name)`: a client certificate for mutual TLS (a gateway's own certificate).

Files are PEM throughout: Mosquitto, OpenSSL clients, Python's `ssl` and Kafka (`ssl.keystore.type=PEM`,
an unencrypted PKCS#8 key) read them as they are. Private keys are written with
`riskwatch.secrets.write_private` (0600 from creation, atomic rename). Everything is reused across stack
restarts: the CA as long as it is valid, a certificate as long as it was signed by this CA, names
exactly the hosts asked for and has more than `RENEW_BEFORE` left; otherwise it is issued again. A lock
file serialises issuing between processes sharing the folder.

Keys are ECDSA P-256 (fast to generate, accepted by OpenSSL, Java, Chromium and embedded TLS stacks).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from riskwatch.errors import StackError
from riskwatch.secrets import write_private

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
CA_VALIDITY = dt.timedelta(days=3650)
# Under 398 days: the longest leaf validity browsers accept.
LEAF_VALIDITY = dt.timedelta(days=397)
RENEW_BEFORE = dt.timedelta(days=30)
ORGANISATION = "riskwatch"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """PEM files of one certificate: `cert` (leaf then CA), its private `key` and the `ca` to verify with."""

    cert: Path
    key: Path
    ca: Path

    def spki_sha256(self) -> str:
        """Base64 SHA-256 of the certificate's public key (Chromium's --ignore-certificate-errors-spki-list
        and HTTP public key pins take this form)."""
        return spki_sha256(load_certificate(self.cert))


def spki_sha256(cert: x509.Certificate) -> str:
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def load_certificate(path: Path) -> x509.Certificate:
    """The first certificate of a PEM file (the leaf of a chain)."""
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise StackError(f"{path}: not a readable PEM certificate ({exc})") from exc


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # PKCS#8 unencrypted: the form Kafka's PEM keystore, Mosquitto and Python's ssl all read.
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def host_names(hosts: Iterable[str]) -> list[str]:
    """The local names plus `hosts`, without duplicates, in a stable order."""
    names: list[str] = []
    for host in (*LOCAL_HOSTS, *hosts):
        host = host.strip().strip("[]")
        if host and host not in names:
            names.append(host)
    return names


def _sans(cert: x509.Certificate) -> set[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(n.value) for n in ext}


class CertificateAuthority:
    """The CA under `directory`: created on first use, then reused (see the module docstring)."""

    def __init__(self, directory: Path, name: str = "riskwatch local CA") -> None:
        self.directory = Path(directory)
        self.name = name
        self.ca_cert = self.directory / "ca.pem"
        self.ca_key = self.directory / "ca.key"

    # -- public ----------------------------------------------------------------------------------
    def ensure(self) -> Path:
        """The CA certificate's path, creating the CA if there is none (or it expires soon)."""
        with self._locked():
            self._load_or_create()
        return self.ca_cert

    def server(self, name: str, hosts: Iterable[str] = ()) -> IssuedCertificate:
        """`<name>.pem` / `<name>.key`: a TLS server certificate for the local names and `hosts`."""
        sans = host_names(hosts)
        return self._issue(name, sans, ExtendedKeyUsageOID.SERVER_AUTH)

    def client(self, name: str) -> IssuedCertificate:
        """`<name>.pem` / `<name>.key`: a TLS client certificate whose common name is `name`."""
        return self._issue(name, [], ExtendedKeyUsageOID.CLIENT_AUTH)

    # -- internals -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load_or_create(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if self.ca_cert.exists() and not self.ca_key.exists():
            # Never replace a CA silently: every client trusting it would stop connecting.
            raise StackError(
                f"{self.ca_key} is missing: put the CA's key back to issue certificates from {self.ca_cert}, "
                "or remove the certificate to start a new CA (every client must then get the new one)"
            )
        if self.ca_cert.exists() and self.ca_key.exists():
            cert = load_certificate(self.ca_cert)
            key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise StackError(f"{self.ca_key}: expected an EC private key")
            if cert.not_valid_after_utc - _now() > RENEW_BEFORE and _same_key(cert, key):
                return cert, key
        key = _new_key()
        now = _now()
        subject = _name(self.name)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        # Key first: a CA certificate on disk always has its key beside it.
        write_private(self.ca_key, _key_pem(key))
        write_private(self.ca_cert, _cert_pem(cert))
        self.ca_cert.chmod(0o644)  # public: every client reads it
        return cert, key

    def _issue(self, name: str, sans: list[str], usage: x509.ObjectIdentifier) -> IssuedCertificate:
        if not _SAFE_NAME.match(name) or name == "ca":
            raise StackError(f"certificate name {name!r}: letters, digits, '.', '_' and '-' only, not 'ca'")
        issued = IssuedCertificate(
            self.directory / f"{name}.pem", self.directory / f"{name}.key", self.ca_cert
        )
        with self._locked():
            ca_cert, ca_key = self._load_or_create()
            if self._reusable(issued, ca_cert, sans, usage):
                return issued
            key = _new_key()
            now = _now()
            builder = (
                x509.CertificateBuilder()
                .subject_name(_name(name))
                .issuer_name(ca_cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(min(now + LEAF_VALIDITY, ca_cert.not_valid_after_utc))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(_key_usage(ca=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
                )
            )
            if sans:
                builder = builder.add_extension(
                    x509.SubjectAlternativeName([_general_name(h) for h in sans]), critical=False
                )
            cert = builder.sign(ca_key, hashes.SHA256())
            write_private(issued.key, _key_pem(key))
            # The chain (leaf, then CA) so servers that send what they are given send the whole chain.
            write_private(issued.cert, _cert_pem(cert, ca_cert))
            issued.cert.chmod(0o644)
        return issued

    def _reusable(
        self,
        issued: IssuedCertificate,
        ca_cert: x509.Certificate,
        sans: list[str],
        usage: x509.ObjectIdentifier,
    ) -> bool:
        if not (issued.cert.exists() and issued.key.exists()):
            return False
        try:
            cert = load_certificate(issued.cert)
            key = serialization.load_pem_private_key(issued.key.read_bytes(), password=None)
            cert.verify_directly_issued_by(ca_cert)
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (StackError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound, OSError):
            return False
        return (
            isinstance(key, ec.EllipticCurvePrivateKey)
            and _same_key(cert, key)
            and cert.not_valid_after_utc - _now() > RENEW_BEFORE
            and _sans(cert) == {str(_general_name(h).value) for h in sans}
            and usage in eku
        )


def _key_usage(ca: bool) -> x509.KeyUsage:
    """A CA signs certificates; a leaf signs handshakes (ECDHE) and may agree keys."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _same_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt)


def chromium_trust_args(certfile: Path) -> list[str]:
    """Chromium flags that accept exactly this server certificate's key, for a browser driven against a
    server with a private CA's certificate (any other certificate is still refused). Chromium honours the
    flag only with a --user-data-dir, which Playwright always gives it."""
    return [f"--ignore-certificate-errors-spki-list={spki_sha256(load_certificate(certfile))}"]


def stack_ca(home: Path) -> CertificateAuthority:
    """The local stack's CA (`home/certs`), shared by every service that listens with TLS (Mosquitto,
    Kafka, alerting's HTTPS)."""
    return CertificateAuthority(home / "certs")
