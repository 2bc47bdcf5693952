"""Cut a sandbox VM's open SSH connections, as a network drop mid-command does.

The SSH server's per-connection processes (`sshd: user [priv]`, `sshd: user@notty`, or
`sshd-session` on OpenSSH 9.8 and later) are killed; the listening server stays, so the next
connection is accepted. What a command started in the cut session does afterwards is up to it
(a command run detached, under `setsid`/`nohup`, goes on)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

SSHD_NAMES = ("sshd", "sshd-session")


def _stat(pid: int) -> tuple[str, int] | None:
    """(comm, parent pid) of `pid`, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    return comm, int(text[text.rindex(")") + 2 :].split()[1])


def session_processes(root_pid: int) -> list[int]:
    """The SSH server's per-connection processes below `root_pid` (a sandbox's PID 1, or an
    sshd listener): every sshd whose parent is an sshd."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = stat
    below = {root_pid}
    changed = True
    while changed:
        changed = False
        for pid, (_, ppid) in parents.items():
            if ppid in below and pid not in below:
                below.add(pid)
                changed = True
    return sorted(
        pid
        for pid in below - {root_pid}
        if parents[pid][0] in SSHD_NAMES and parents.get(parents[pid][1], ("", 0))[0] in SSHD_NAMES
    )


def drop_sessions(root_pid: int) -> int:
    """Kill every open SSH connection's server processes below `root_pid`; how many."""
    pids = session_processes(root_pid)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)
