"""Remote commands as values: an argument list quoted by one function, with a remote time limit.

Nothing here formats a value into a shell string by hand: every argument goes through
`quote_argv`, so a `;`, `$(...)`, quote or newline in a package name or path stays one argument.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

# Grace period between the TERM that `timeout` sends at the limit and the KILL that follows.
KILL_AFTER_S = 10


def quote_argv(argv: Sequence[str]) -> str:
    """The one place that turns an argument list into a POSIX shell command line."""
    for arg in argv:
        if "\0" in arg:
            # A NUL cannot be passed through exec(); refuse rather than truncate silently.
            raise ValueError("a remote command argument contains a NUL character")
    return shlex.join(argv)


@dataclass(frozen=True)
class RemoteCommand:
    """One command to run on the guest: argv, a time limit enforced remotely, and sudo or not."""

    argv: tuple[str, ...]
    timeout_s: int = 60
    sudo: bool = False

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("a remote command needs at least one argument")
        if self.timeout_s <= 0:
            raise ValueError("a remote command needs a positive time limit")

    def render(self) -> str:
        """`[sudo -n] timeout -k 10 <t> <argv...>`, every part quoted by `quote_argv`.

        The time limit runs on the guest because closing the SSH channel does not stop the
        process; `sudo -n` fails at once instead of waiting for a password prompt.
        """
        prefix: list[str] = ["sudo", "-n"] if self.sudo else []
        prefix += ["timeout", "-k", str(KILL_AFTER_S), str(self.timeout_s)]
        return quote_argv([*prefix, *self.argv])

    def describe(self) -> str:
        """A short form for logs and error messages (the argv only, quoted)."""
        text = quote_argv(self.argv)
        return text if len(text) <= 300 else text[:297] + "..."
