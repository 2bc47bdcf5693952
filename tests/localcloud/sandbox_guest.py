"""Test helpers for sandbox VMs: key material as Azure hands it in, and a pinned SSH session."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import asyncssh
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from localcloud.sandbox.api import GuestConfig


@dataclass(frozen=True)
class GuestIdentity:
    """An admin user with its client key and the SSH host key the VM gets through customData."""

    hostname: str
    user: str
    client_key: asyncssh.SSHKey
    host_key: asyncssh.SSHKey

    @classmethod
    def new(cls, hostname: str, user: str) -> GuestIdentity:
        return cls(
            hostname,
            user,
            asyncssh.generate_private_key("ssh-ed25519"),
            asyncssh.generate_private_key("ssh-ed25519"),
        )

    def guest_config(self) -> GuestConfig:
        cloud_config = {
            "ssh_keys": {
                "ed25519_private": self.host_key.export_private_key().decode(),
                "ed25519_public": self.host_key.export_public_key().decode().strip(),
            }
        }
        custom_data = ("#cloud-config\n" + yaml.safe_dump(cloud_config)).encode()
        public = self.client_key.export_public_key().decode().strip()
        return GuestConfig(self.hostname, self.user, [public], custom_data)

    async def connect(self, address: str) -> asyncssh.SSHClientConnection:
        """SSH as the admin user, trusting only the host key handed in (pinned)."""
        return await asyncssh.connect(
            address,
            username=self.user,
            client_keys=[self.client_key],
            known_hosts=([self.host_key.convert_to_public()], [], []),
            connect_timeout=10,
        )


async def run(conn: asyncssh.SSHClientConnection, command: str) -> str:
    """Run a shell command on the guest; fail the test with its stderr when it fails."""
    result = await conn.run(command, timeout=120)
    assert result.exit_status == 0, f"{command!r} failed: {result.stderr!s}"
    return str(result.stdout)


def self_signed_ca_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localcloud test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)
