"""Detached remote jobs: start once, poll, read results. No controller invocation waits for minutes.

A job lives in `/var/lib/labimage/jobs/<job_name>/`: `run` (the script), files handed to it
(mode 0600, e.g. a parameters JSON holding a SAS URL), `env`, `log`, `pid` and finally `status`.
Secrets go in files, never on a command line (visible in `ps`) and never in the log.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from shared.errors import TemporaryError
from shared.remote import load_script
from shared.ssh.errors import RemoteCommandError
from shared.ssh.quoting import RemoteCommand
from shared.ssh.runner import Result, SshRunner, tail

JOBS_ROOT = "/var/lib/labimage/jobs"
LOG_TAIL_BYTES = 4000

_JOB_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = {"run", "env", "log", "pid", "supervisor", "status", "job_launch.sh"}

# Constant text: the job directories come in as arguments, never spliced in. One line per job:
# `missing`, `lost`, `running`, or `finished <status> <started> <ended>` (epoch seconds of the
# job's `pid` and `status` files, the guest's clock). With a wait above 0 it blocks until one
# of the jobs is no longer running or the wait is over (the bounded long wait).
_STATE_SCRIPT = r"""
wait_s=$1; shift
until_s=$(( $(date +%s) + wait_s ))
while :; do
    lines="" settled=0
    for d in "$@"; do
        if [ ! -d "$d" ]; then line="missing"; settled=1
        elif [ -f "$d/status" ]; then
            began=$(date -r "$d/pid" +%s.%N 2>/dev/null || echo 0)
            line="finished $(cat "$d/status") $began $(date -r "$d/status" +%s.%N)"
            settled=1
        elif [ -f "$d/supervisor" ] && ! kill -0 "$(cat "$d/supervisor")" 2>/dev/null \
                && [ ! -f "$d/status" ]; then
            line="lost"; settled=1
        else line="running"; fi
        lines="$lines$line
"
    done
    if [ "$settled" = 1 ] || [ "$(date +%s)" -ge "$until_s" ]; then
        printf '%s' "$lines"
        exit 0
    fi
    sleep 0.2
done
"""

_LOG_SCRIPT = r"""
tail -c LOG_TAIL "$1/log" 2>/dev/null || true
""".replace("LOG_TAIL", str(LOG_TAIL_BYTES))

_STOP_SCRIPT = r"""
d=$1
if [ -f "$d/pid" ] && [ ! -f "$d/status" ]; then
    kill -TERM "$(cat "$d/pid")" 2>/dev/null || true
fi
"""


@dataclass(frozen=True)
class JobState:
    """What a poll saw. `exit_status` is None while running, and for a job that was lost
    (its process is gone without a status, e.g. the VM rebooted). `started_at`/`ended_at` are
    the guest's epoch seconds of a finished job (0.0 when unknown)."""

    finished: bool
    exit_status: int | None
    log_tail: str
    exists: bool = True
    started_at: float = 0.0
    ended_at: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.finished and self.exit_status == 0


def _parse_state(line: str) -> JobState:
    word, *rest = line.split() or ["running"]
    if word == "missing":
        return JobState(finished=False, exit_status=None, log_tail="", exists=False)
    if word == "lost":
        return JobState(finished=True, exit_status=None, log_tail="")
    if word == "finished" and len(rest) == 3:
        return JobState(
            finished=True,
            exit_status=int(rest[0]),
            log_tail="",
            started_at=float(rest[1]),
            ended_at=float(rest[2]),
        )
    return JobState(finished=False, exit_status=None, log_tail="")


def job_dir(job_name: str) -> str:
    if not _JOB_NAME.fullmatch(job_name):
        raise ValueError(f"invalid job name {job_name!r}: lowercase letters, digits, '.', '_', '-'")
    return f"{JOBS_ROOT}/{job_name}"


def _env_text(env: Mapping[str, str]) -> str:
    lines = []
    for key, value in env.items():
        if not _ENV_NAME.fullmatch(key):
            raise ValueError(f"invalid environment variable name {key!r}")
        if "\n" in value or "\0" in value:
            raise ValueError(f"environment variable {key} holds a newline or NUL")
        lines.append(f"{key}={value}\n")
    return "".join(lines)


async def _stage(
    runner: SshRunner,
    script_text: str,
    files: Mapping[str, bytes],
    env: Mapping[str, str],
) -> str:
    """A private temporary directory on the guest holding `run`, `env` and the given files."""
    for name in files:
        if not _FILE_NAME.fullmatch(name) or name in _RESERVED:
            raise ValueError(f"invalid job file name {name!r}")
    env_text = _env_text(env)
    made = await runner.check(RemoteCommand(("mktemp", "-d", "/tmp/labimage-job-XXXXXXXX"), 30))
    staging = made.stdout.strip()
    await runner.upload(script_text.encode("utf-8"), f"{staging}/run", mode=0o700)
    if env_text:
        await runner.upload(env_text.encode("utf-8"), f"{staging}/env", mode=0o600)
    for name, data in files.items():
        await runner.upload(data, f"{staging}/{name}", mode=0o600)
    return staging


async def start_job(
    runner: SshRunner,
    job_name: str,
    script_text: str,
    args: Sequence[str],
    timeout_s: int,
    env: Mapping[str, str] | None = None,
    *,
    files: Mapping[str, bytes] | None = None,
    interpreter: Sequence[str] = (),
) -> bool:
    """Start `script_text` detached as root, once per job name; True if this call started it.

    The job runs in its directory (so `args` may name the `files` by their bare names) as
    `[interpreter...] ./run args...` under `timeout -k 10 <timeout_s>`. A second start of the
    same job, running or finished, changes nothing and returns False.
    """
    job_dir(job_name)  # validates the name before anything is uploaded
    staging = await _stage(runner, script_text, files or {}, env or {})
    launch = load_script("job_launch.sh").encode("utf-8")
    await runner.upload(launch, f"{staging}/job_launch.sh", mode=0o700)
    command = (*interpreter, "./run", *args)
    result = await runner.check(
        RemoteCommand(
            (
                "/bin/bash",
                f"{staging}/job_launch.sh",
                JOBS_ROOT,
                job_name,
                staging,
                str(timeout_s),
                *command,
            ),
            timeout_s=60,
            sudo=True,
        )
    )
    # On "already-started" the launcher has removed the staging directory itself.
    return result.stdout.strip() == "started"


async def poll_job(runner: SshRunner, job_name: str) -> JobState:
    """The job's state now: running, finished with its exit status, lost, or missing; with the
    tail of its log."""
    states = await wait_for_jobs(runner, [job_name], 0)
    log = await runner.check(
        RemoteCommand(("/bin/sh", "-c", _LOG_SCRIPT, "log", job_dir(job_name)), 30, sudo=True)
    )
    return replace(states[job_name], log_tail=log.stdout if states[job_name].exists else "")


async def wait_for_jobs(
    runner: SshRunner, job_names: Sequence[str], wait_s: int
) -> dict[str, JobState]:
    """The jobs' states once one of them is no longer running, or after `wait_s` seconds,
    whichever comes first: the guest blocks meanwhile, so an ending job is seen within a
    fraction of a second. Log tails are not read here (`poll_job` reads one)."""
    dirs = [job_dir(name) for name in job_names]
    result = await runner.check(
        RemoteCommand(
            ("/bin/bash", "-c", _STATE_SCRIPT, "wait", str(int(wait_s)), *dirs),
            int(wait_s) + 30,
            sudo=True,
        )
    )
    lines = result.stdout.splitlines()
    lines += ["running"] * (len(dirs) - len(lines))
    return {name: _parse_state(line) for name, line in zip(job_names, lines, strict=False)}


async def stop_job(runner: SshRunner, job_name: str) -> None:
    """Ask a running job to stop (TERM to its `timeout`, which passes it on). Idempotent."""
    await runner.check(
        RemoteCommand(("/bin/sh", "-c", _STOP_SCRIPT, "stop", job_dir(job_name)), 30, sudo=True)
    )


async def read_job_file(runner: SshRunner, job_name: str, name: str) -> str:
    """The text of a file the job wrote in its directory (e.g. `report.json`)."""
    if not _FILE_NAME.fullmatch(name):
        raise ValueError(f"invalid job file name {name!r}")
    return await runner.read_file(f"{job_dir(job_name)}/{name}", sudo=True)


async def remove_job(runner: SshRunner, job_name: str) -> None:
    """Delete the job's directory (after its results were read), so it could run again."""
    await runner.check(RemoteCommand(("rm", "-rf", "--", job_dir(job_name)), 60, sudo=True))


async def end_job(runner: SshRunner, job_name: str, wait_s: float = 20) -> None:
    """Stop the job if an earlier run of it still runs (an invocation cut off mid-way leaves
    it behind), wait for it to end, then remove it, so that a new run starts clean."""
    state = await poll_job(runner, job_name)
    if state.exists and not state.finished:
        await stop_job(runner, job_name)
        deadline = asyncio.get_running_loop().time() + wait_s
        while not (await poll_job(runner, job_name)).finished:
            if asyncio.get_running_loop().time() > deadline:
                raise TemporaryError(f"an earlier run of job {job_name} does not stop")
            await asyncio.sleep(0.5)
    await remove_job(runner, job_name)


async def run_script(
    runner: SshRunner,
    script_text: str,
    args: Sequence[str],
    timeout_s: int,
    *,
    files: Mapping[str, bytes] | None = None,
    interpreter: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    name: str = "script",
) -> Result:
    """Run a short script as root and wait for it (seconds, not minutes); raises on non-zero exit.

    Same conventions as `start_job` (files beside `run`, args may name them), without detaching.
    `env` values appear on the command line: never put a secret there, use `files`.
    `name` labels the script in the error.
    """
    staging = await _stage(runner, script_text, files or {}, {})
    env_args = [f"{k}={v}" for k, v in (env or {}).items() if _ENV_NAME.fullmatch(k)]
    try:
        result = await runner.run(
            RemoteCommand(
                ("env", "-C", staging, *env_args, *interpreter, "./run", *args),
                timeout_s=timeout_s,
                sudo=True,
            )
        )
    finally:
        await runner.run(RemoteCommand(("rm", "-rf", "--", staging), 30, sudo=True))
    if result.exit_status != 0:
        raise RemoteCommandError(
            RemoteCommand((name, *args)).describe(),
            result.exit_status,
            tail(result.stderr),
        )
    return result
