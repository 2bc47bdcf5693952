"""Detached background processes of one localcloud state folder: start, find and stop them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def run_dir(state_dir: Path) -> Path:
    return state_dir / "run"


def log_path(state_dir: Path, name: str) -> Path:
    return state_dir / "logs" / f"{name}.log"


def pid_file(state_dir: Path, name: str) -> Path:
    return run_dir(state_dir) / f"{name}.pid"


def start_detached(
    state_dir: Path, name: str, argv: list[str], env: dict[str, str], cwd: Path
) -> subprocess.Popen[bytes]:
    """Start `argv` in its own session, output to `<state>/logs/<name>.log`, pid in `run/`.

    The process outlives the caller; `stop_named` or `stop_all_naming` ends it.
    """
    log = log_path(state_dir, name)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    record_pid(state_dir, name, proc.pid)
    return proc


def record_pid(state_dir: Path, name: str, pid: int) -> None:
    run_dir(state_dir).mkdir(parents=True, exist_ok=True)
    pid_file(state_dir, name).write_text(f"{pid}\n")


def read_pid(state_dir: Path, name: str) -> int | None:
    try:
        return int(pid_file(state_dir, name).read_text().strip())
    except (OSError, ValueError):
        return None


def command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def names_folder(argv: list[str], folder: Path) -> bool:
    """True when an argument is `folder` or a path inside it."""
    prefix = str(folder)
    for arg in argv:
        at = arg.find(prefix)
        if at >= 0:
            rest = arg[at + len(prefix) :]
            if rest == "" or rest.startswith("/"):
                return True
    return False


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return status != "Z"


def live_pid(state_dir: Path, name: str) -> int | None:
    """The pid of component `name` if its pid file names a live process of this state folder."""
    pid = read_pid(state_dir, name)
    if pid and is_alive(pid) and names_folder(command_line(pid), state_dir):
        return pid
    return None


def _ancestors() -> set[int]:
    pids = {os.getpid()}
    pid = os.getpid()
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        pids.add(pid)
    return pids


def processes_naming(folder: Path) -> list[int]:
    """Every live process (not this one or its ancestors) whose command line names `folder`."""
    skip = _ancestors()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in skip:
            pid = int(entry.name)
            if names_folder(command_line(pid), folder) and is_alive(pid):
                found.append(pid)
    return found


def terminate(pids: list[int], timeout: float = 10) -> None:
    """SIGTERM each process (and its process group when it leads one), SIGKILL after `timeout`."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(is_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if is_alive(pid):
            _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
