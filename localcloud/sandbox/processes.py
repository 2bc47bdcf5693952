"""Host processes of the sandboxes, known by pid and start time so a reused pid is not ours."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessRef:
    pid: int
    start_time: int  # field 22 of /proc/<pid>/stat, in clock ticks since boot

    @classmethod
    def of(cls, pid: int) -> ProcessRef | None:
        start = start_time(pid)
        return None if start is None else cls(pid, start)

    def alive(self) -> bool:
        return start_time(self.pid) == self.start_time and not is_zombie(self.pid)

    def kill(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


def start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command name may contain spaces and parentheses: split after the last ')'
    return int(stat.rsplit(")", 1)[1].split()[19])


def is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def wait_gone(refs: list[ProcessRef], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(r.alive() for r in refs):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def processes_mentioning(needles: list[tuple[str, ...]]) -> list[ProcessRef]:
    """Every process whose command line contains all words of one of `needles` (scans /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if any(all(word in cmdline for word in words) for words in needles):
            ref = ProcessRef.of(int(entry.name))
            if ref is not None:
                found.append(ref)
    return found
