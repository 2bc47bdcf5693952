"""An asyncssh client for one guest: pinned host key, typed errors, commands and SFTP uploads.

Two layers, as in cephadm: `run` returns stdout, stderr and the exit status; `check` raises
`RemoteCommandError` on a non-zero exit. Every transport failure becomes `SshConnectionError`
(temporary), except a host key other than the pinned one, which is `HostKeyMismatch` (permanent).
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncssh

from shared import telemetry
from shared.ssh.errors import (
    HostKeyMismatch,
    RemoteCommandError,
    RemoteOutputTooLarge,
    SshConnectionError,
    SshTurnedAway,
)
from shared.ssh.quoting import KILL_AFTER_S, RemoteCommand

logger = logging.getLogger(__name__)
# asyncssh logs every channel and command at INFO; that floods the traces a person reads.
logging.getLogger("asyncssh").setLevel(logging.WARNING)

STDERR_TAIL_CHARS = 2000
# The most of one output stream read from a guest; a log copy reads at most 16 MiB.
OUTPUT_LIMIT_BYTES = 32 * 1024 * 1024
READ_CHUNK_BYTES = 64 * 1024
# The local wait outlives the remote limit, so the guest's `timeout` normally reports first.
LOCAL_GRACE_S = KILL_AFTER_S + 20


@dataclass(frozen=True)
class SshTarget:
    """Where and as whom to log in, and the only host key to accept there."""

    host: str
    port: int
    username: str
    client_private_key: str = field(repr=False)  # OpenSSH private key text
    host_public_key: str  # one "ssh-ed25519 AAAA..." line: the pinned key
    connect_timeout_s: float = 20.0


@dataclass(frozen=True)
class Result:
    stdout: str
    stderr: str
    exit_status: int


def tail(text: str, limit: int = STDERR_TAIL_CHARS) -> str:
    """The last `limit` characters of `text`, cut at a line start when possible."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    newline = cut.find("\n")
    return cut[newline + 1 :] if 0 <= newline < limit // 2 else cut


class SshRunner:
    """An open SSH connection to one guest. Use `connect(target)` to get one."""

    def __init__(self, target: SshTarget, conn: asyncssh.SSHClientConnection) -> None:
        self.target = target
        self.conn = conn

    async def run(self, cmd: RemoteCommand, input: str | None = None) -> Result:
        """Run `cmd` and return its output and exit status; a non-zero exit is not an error here."""
        with telemetry.span(f"ssh {cmd.describe()}", self._span_attributes()) as span:
            try:
                stdout, stderr, exit_status, exit_signal = await asyncio.wait_for(
                    self._run_bounded(cmd, input), timeout=cmd.timeout_s + LOCAL_GRACE_S
                )
            except (asyncssh.Error, OSError, TimeoutError) as exc:
                raise SshConnectionError(
                    f"ssh to {self.target.host}:{self.target.port} failed while running "
                    f"{cmd.describe()}: {type(exc).__name__}"
                ) from None
            if exit_status is None and exit_signal is None:
                # Neither status nor signal came back: the connection was cut mid-command.
                raise SshConnectionError(
                    f"ssh to {self.target.host}:{self.target.port} was cut while running "
                    f"{cmd.describe()}: no exit status came back"
                )
            # A command killed by a signal (asyncssh's -1); report it as ssh(1) does.
            status = exit_status if exit_status not in (None, -1) else 255
            span.set("labimage.ssh.exit_status", status)
            return Result(_text(stdout), _text(stderr), status)

    async def _run_bounded(
        self, cmd: RemoteCommand, input: str | None
    ) -> tuple[bytes, bytes, int | None, object]:
        """Run `cmd`, reading each output stream up to OUTPUT_LIMIT_BYTES: past that the
        channel is closed and RemoteOutputTooLarge raised (a guest is its owner's, and what
        it prints is held in the controller's memory)."""
        process = await self.conn.create_process(cmd.render(), encoding=None)
        try:
            if input is not None:
                process.stdin.write(input.encode())
            process.stdin.write_eof()
            # Past the bound the channel is closed, which also ends the other stream's read.
            stdout, stderr = await asyncio.gather(
                _read_bounded(process.stdout, process.close),
                _read_bounded(process.stderr, process.close),
            )
            if stdout is None or stderr is None:
                raise RemoteOutputTooLarge(cmd.describe(), OUTPUT_LIMIT_BYTES)
            await process.wait_closed()
            return stdout, stderr, process.exit_status, process.exit_signal
        finally:
            process.close()

    def _span_attributes(self) -> dict[str, object]:
        # Where and as whom only: never a command's input, output or a key.
        return {
            "labimage.ssh.host": self.target.host,
            "labimage.ssh.port": self.target.port,
            "labimage.ssh.user": self.target.username,
        }

    async def check(self, cmd: RemoteCommand, input: str | None = None) -> Result:
        """Run `cmd`; raise `RemoteCommandError` with the stderr tail unless it exits 0."""
        result = await self.run(cmd, input=input)
        if result.exit_status != 0:
            raise RemoteCommandError(cmd.describe(), result.exit_status, tail(result.stderr))
        return result

    async def upload(
        self, data: bytes, dest: str, mode: int = 0o644, root_owned: bool = False
    ) -> None:
        """Put `data` at `dest` atomically: SFTP to a temporary path, then move into place.

        The temporary file is created with mode 0600, so secrets are never readable by others,
        even for a moment. With `root_owned`, the file is chowned to root and moved with sudo
        (for targets the login user cannot write).
        """
        if not posixpath.isabs(dest):
            raise ValueError("upload destination must be an absolute path")
        with telemetry.span(f"ssh upload {dest}", self._span_attributes()):
            await self._upload(data, dest, mode, root_owned)

    async def _upload(self, data: bytes, dest: str, mode: int, root_owned: bool) -> None:
        token = secrets.token_hex(8)
        if root_owned:
            tmp = f"/tmp/.labimage-upload-{token}"
        else:
            tmp = posixpath.join(posixpath.dirname(dest), f".labimage-upload-{token}")
        try:
            async with self.conn.start_sftp_client() as sftp:
                attrs = asyncssh.SFTPAttrs(permissions=0o600)
                async with sftp.open(tmp, "wb", attrs) as remote_file:
                    await remote_file.write(data)
                if not root_owned:
                    await sftp.chmod(tmp, mode)
                    await sftp.posix_rename(tmp, dest)
                    return
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            raise SshConnectionError(
                f"sftp upload to {self.target.host} failed: {type(exc).__name__}: {exc}"
            ) from None
        await self.check(RemoteCommand(("chown", "root:root", tmp), 30, sudo=True))
        await self.check(RemoteCommand(("chmod", f"{mode:o}", tmp), 30, sudo=True))
        await self.check(RemoteCommand(("mv", "-f", "-T", tmp, dest), 30, sudo=True))

    async def read_file(self, path: str, sudo: bool = False, timeout_s: int = 30) -> str:
        """The text of a remote file; `RemoteCommandError` when it cannot be read."""
        result = await self.check(RemoteCommand(("cat", "--", path), timeout_s, sudo=sudo))
        return result.stdout

    async def close(self) -> None:
        self.conn.close()
        await self.conn.wait_closed()


async def _read_bounded(
    stream: asyncssh.SSHReader[bytes], overflowed: Callable[[], None]
) -> bytes | None:
    """All of `stream`, or None once it passes OUTPUT_LIMIT_BYTES (`overflowed` is called
    then). A stream ended by the other's overflow reads as cut short."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(READ_CHUNK_BYTES):
        size += len(chunk)
        if size > OUTPUT_LIMIT_BYTES:
            overflowed()
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


async def _connect(
    target: SshTarget, client_key: asyncssh.SSHKey, host_key: asyncssh.SSHKey
) -> asyncssh.SSHClientConnection:
    return await asyncio.wait_for(
        asyncssh.connect(
            target.host,
            port=target.port,
            username=target.username,
            client_keys=[client_key],
            # Pinned: exactly this host key is trusted, no CA, nothing from ~/.ssh.
            known_hosts=([host_key], [], []),
            agent_path=None,
            config=[],
            connect_timeout=target.connect_timeout_s,
            login_timeout=target.connect_timeout_s,
            keepalive_interval=30,
        ),
        timeout=target.connect_timeout_s * 2,
    )


async def open_runner(target: SshTarget) -> SshRunner:
    """Log in to `target`, accepting only its pinned host key. Caller closes the runner."""
    try:
        client_key = asyncssh.import_private_key(target.client_private_key)
        host_key = asyncssh.import_public_key(target.host_public_key)
    except (asyncssh.KeyImportError, ValueError):
        # The key text itself must never reach the message.
        raise ValueError(f"unreadable SSH key for {target.host}") from None
    try:
        with telemetry.span(f"ssh connect {target.host}"):
            conn = await _connect(target, client_key, host_key)
    except asyncssh.HostKeyNotVerifiable:
        raise HostKeyMismatch(
            f"{target.host}:{target.port} presented a host key other than the one pinned for it "
            "(expected {fingerprint}); refusing to connect".format(
                fingerprint=host_key.get_fingerprint()
            )
        ) from None
    except asyncssh.PermissionDenied:
        # On a booting VM cloud-init may not have installed the login key yet.
        raise SshTurnedAway(
            f"ssh login as {target.username} to {target.host}:{target.port} was refused"
        ) from None
    except (ConnectionResetError, asyncssh.ConnectionLost) as exc:
        raise SshTurnedAway(
            f"ssh to {target.host}:{target.port} failed: {type(exc).__name__}: {exc}"
        ) from None
    except (asyncssh.Error, OSError, TimeoutError) as exc:
        raise SshConnectionError(
            f"ssh to {target.host}:{target.port} failed: {type(exc).__name__}: {exc}"
        ) from None
    return SshRunner(target, conn)


@asynccontextmanager
async def connect(target: SshTarget) -> AsyncIterator[SshRunner]:
    """`async with connect(target) as runner:` an open runner, closed afterwards."""
    runner = await open_runner(target)
    try:
        yield runner
    finally:
        await runner.close()
