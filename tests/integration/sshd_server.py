"""A real OpenSSH server for tests: 127.0.0.1:<free port>, a generated host key, a throwaway user.

The user `labimage-test` gets passwordless sudo (as the admin user of an Azure VM has) and is
removed again, with its sudoers file and home, when the server stops.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from localcloud.azurite import free_port
from shared.ssh.keys import KeyPair, generate_keypair
from shared.ssh.runner import SshTarget

SSHD = "/usr/sbin/sshd"
# LABIMAGE_TEST_USER lets two checkouts run their SSH tests at once.
TEST_USER = os.environ.get("LABIMAGE_TEST_USER", "labimage-test")
SUDOERS_FILE = Path(f"/etc/sudoers.d/{TEST_USER}")


@dataclass(frozen=True)
class SshdServer:
    host: str
    port: int
    username: str
    client_key: KeyPair
    host_key: KeyPair
    home: Path
    pid: int = 0  # the listener's; its per-connection processes run below it

    def target(self, host_public_key: str | None = None) -> SshTarget:
        return SshTarget(
            host=self.host,
            port=self.port,
            username=self.username,
            client_private_key=self.client_key.private_openssh,
            host_public_key=host_public_key or self.host_key.public_line,
            connect_timeout_s=10,
        )


def unavailable_reason() -> str | None:
    """Why a real sshd cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to start sshd and create a throwaway user"
    for tool in (SSHD, "/usr/bin/sudo", "/usr/sbin/useradd"):
        if not Path(tool).exists():
            return f"{tool} is not installed"
    return None


def _create_user() -> Path:
    _remove_user()
    subprocess.run(["useradd", "-m", "-s", "/bin/bash", TEST_USER], check=True)
    # "*" is an unusable password that sshd does not treat as a locked account ("!").
    subprocess.run(["usermod", "-p", "*", TEST_USER], check=True)
    SUDOERS_FILE.write_text(f"{TEST_USER} ALL=(ALL) NOPASSWD:ALL\n")
    SUDOERS_FILE.chmod(0o440)
    return Path(f"/home/{TEST_USER}")


def _remove_user() -> None:
    SUDOERS_FILE.unlink(missing_ok=True)
    subprocess.run(["pkill", "-KILL", "-u", TEST_USER], check=False, capture_output=True)
    subprocess.run(["userdel", "-r", "-f", TEST_USER], check=False, capture_output=True)


def _wait_for_port(host: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError("sshd did not start listening within 10 s")


@contextlib.contextmanager
def running_sshd(host: str = "127.0.0.1", port: int | None = None) -> Iterator[SshdServer]:
    """Start sshd with its own config, host key and authorized_keys; stop and clean up after.
    It listens on `host`:`port` (default: 127.0.0.1 and a free port)."""
    # Not under pytest's tmp dirs: sshd reads authorized_keys as the user, who cannot enter
    # root's 0700 directories.
    workdir = Path(tempfile.mkdtemp(prefix="labimage-sshd-"))
    workdir.chmod(0o755)
    host_key = generate_keypair("labimage-test-host")
    client_key = generate_keypair("labimage-test-client")
    host_key_file = workdir / "ssh_host_ed25519_key"
    host_key_file.write_text(host_key.private_openssh)
    host_key_file.chmod(0o600)
    authorized = workdir / "authorized_keys"
    authorized.write_text(client_key.public_line + "\n")
    authorized.chmod(0o644)
    port = port or free_port()
    config = workdir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"ListenAddress {host}:{port}",
                f"HostKey {host_key_file}",
                f"AuthorizedKeysFile {authorized}",
                f"PidFile {workdir / 'sshd.pid'}",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "UsePAM no",
                # The key files live under a world-writable tmp directory.
                "StrictModes no",
                "AllowTcpForwarding yes",
                "Subsystem sftp internal-sftp",
                "LogLevel VERBOSE",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    home = _create_user()
    log = workdir / "sshd.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        with log.open("wb") as log_file:
            proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)], stdout=log_file, stderr=log_file
            )
        _wait_for_port(host, port, proc, log)
        yield SshdServer(host, port, TEST_USER, client_key, host_key, home, proc.pid)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _remove_user()
        shutil.rmtree(workdir, ignore_errors=True)
