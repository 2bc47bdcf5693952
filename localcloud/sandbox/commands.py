"""Running host commands with errors that say what failed."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence


class SandboxError(RuntimeError):
    """A host operation of the sandbox runner failed."""


def run(
    args: Sequence[str],
    *,
    input_text: str | None = None,
    check: bool = True,
    timeout_s: float = 60,
) -> str:
    """Run a command, return its stdout; raise SandboxError with the stderr tail on failure."""
    proc = subprocess.run(
        list(args), input=input_text, capture_output=True, text=True, check=False, timeout=timeout_s
    )
    if check and proc.returncode != 0:
        tail = proc.stderr.strip()[-500:]
        raise SandboxError(f"{' '.join(args[:4])} failed with status {proc.returncode}: {tail}")
    return proc.stdout
