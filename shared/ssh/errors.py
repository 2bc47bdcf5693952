"""The SSH layer's errors, each mapped to one of the two kinds in `shared.errors`."""

from __future__ import annotations

from shared.errors import PermanentError, TemporaryError


class SshConnectionError(TemporaryError):
    """The transport failed (refused, timed out, disconnected, login not yet possible): retry."""


class SshTurnedAway(SshConnectionError):
    """The guest's SSH server answered and then turned the login away: the key refused, or the
    connection reset or closed during the handshake. On a booting VM that passes; on a VM whose
    agent deprovisioned it (admin user and host keys deleted) it lasts."""


class HostKeyMismatch(PermanentError):
    """The guest presented a host key other than the pinned one: never connect, report."""


class RemoteCommandError(PermanentError):
    """A remote command exited non-zero. Permanent unless the step decides otherwise."""

    def __init__(self, command: str, exit_status: int, stderr_tail: str) -> None:
        super().__init__(
            f"remote command failed with exit status {exit_status}: {command}\n{stderr_tail}"
        )
        self.command = command
        self.exit_status = exit_status
        self.stderr_tail = stderr_tail


class RemoteOutputTooLarge(RemoteCommandError):
    """A remote command printed more than the controller reads: cut off, not buffered."""

    def __init__(self, command: str, limit_bytes: int) -> None:
        super().__init__(command, 255, f"it printed more than {limit_bytes // 2**20} MiB")
