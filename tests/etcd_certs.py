"""Certificates for TLS tests, made with ``cryptography``: a CA, a server
certificate for 127.0.0.1 (an IP SAN), a client certificate, and a second
CA nobody trusts."""

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM files."""

    cert: str
    key: str


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _organisation(name):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)])


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _write(directory, stem, cert, key):
    cert_path = directory / f"{stem}.crt"
    key_path = directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return Issued(str(cert_path), str(key_path))


class Authority:
    """A certificate authority whose certificate is written in ``directory``."""

    def __init__(self, directory, name):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.name = name
        self._key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()),
                False,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = str(directory / f"{name}-ca.crt")
        with open(self.ca_file, "wb") as f:
            f.write(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, stem, *, ip=None, common_name=True):
        """A certificate named ``stem`` (and ``ip`` as an IP SAN), good for a
        server and a client: etcd's gateway presents its own server
        certificate as a client to its member. Without ``common_name`` the
        subject is an organisation only: etcd 3.4.10+ refuses a client
        certificate with a CommonName on its JSON gateway when auth is on
        (CVE-2020-15136)."""
        key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(stem) if common_name else _organisation(stem))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self._key.public_key()
                ),
                False,
            )
        )
        if ip is not None:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                False,
            )
        cert = builder.sign(self._key, hashes.SHA256())
        return _write(self.directory, f"{self.name}-{stem}", cert, key)


@dataclass(frozen=True)
class EtcdCertificates:
    """What the TLS tests need: a CA and what it issued, and a second CA
    nobody trusts with a server certificate of its own for the same IP."""

    ca_file: str
    server: Issued
    client: Issued  # without a CommonName: see Authority.issue
    client_with_cn: Issued
    untrusted_ca_file: str
    untrusted_server: Issued


def etcd_certificates(directory):
    """Make :class:`EtcdCertificates` in ``directory``."""
    trusted = Authority(directory, "trusted")
    untrusted = Authority(directory, "untrusted")
    return EtcdCertificates(
        ca_file=trusted.ca_file,
        server=trusted.issue("etcd", ip="127.0.0.1"),
        client=trusted.issue("hotcfg", common_name=False),
        client_with_cn=trusted.issue("hotcfg-cn"),
        untrusted_ca_file=untrusted.ca_file,
        untrusted_server=untrusted.issue("etcd", ip="127.0.0.1"),
    )
