"""A fault plan: which calls localcloud answers badly, how, and how often, under a seed.

A plan is JSON (`localcloud up --faults PLAN.json`, or POSTed to the ARM emulator's
`/localcloud/faults` at run time):

    {"seed": 7,
     "rules": [{"match": "PUT Microsoft.Compute/virtualMachines", "rate": 0.2,
                "kind": "throttle", "retryAfter": 1},
               {"match": "* Microsoft.Network/*", "rate": 0.2, "kind": "server_error",
                "status": 503},
               {"match": "POLL *", "rate": 0.1, "kind": "reset"},
               {"match": "DELETE *", "rate": 0.1, "kind": "reset", "when": "after"},
               {"match": "POST Microsoft.Compute/virtualMachines", "rate": 0.1,
                "kind": "lro_failed"},
               {"match": "VAULT GET", "rate": 0.1, "kind": "delay", "seconds": 2}],
     "ssh": {"dropRate": 0.1, "everySeconds": 5}}

Every call has an operation key: `<METHOD> <namespace/type>` for Resource Manager calls (an
action or a child list counts as a call on its resource's type), `POLL <namespace>` for a
long-running operation's status, `VAULT <METHOD>` for Key Vault's secrets, `GIT GET` /
`GIT POST` for the git server's smart-HTTP requests (a clone or fetch makes both), `BLOB GET` /
`BLOB HEAD` for a guest's reads of Blob storage (list and get; the controller's own Storage
traffic never passes there). `match` is a shell-style pattern over that key, case-insensitive;
a GIT or BLOB rule names its service as the pattern's first word (`*` alone is for Resource
Manager and Key Vault calls only). Kinds: `throttle` (429 with Retry-After; for BLOB, 503
ServerBusy, as Storage throttles), `server_error` (500 or 503 with the service's error body),
`reset` (the TCP connection is reset), `delay` (the answer waits `seconds`), `lro_failed` (the
call is accepted, its operation ends Failed; ARM only). `when: "after"` lets the call take
effect before the fault hides the answer (a reply lost on the way back); for GIT and BLOB only
`reset` takes it, and the connection is cut after the headers and half the body (a read cut
mid-transfer). The default `before` refuses the call untouched. `count` caps how many times a
rule fires. `ssh.dropRate` is the chance, every `everySeconds`, that each running VM's open SSH
connections are cut (the SSH server's session processes killed, as a network drop does).

Deterministic under the seed: whether the n-th call with a given key gets a rule's fault
depends on (seed, rule, key, n) alone, not on how calls of other keys interleave.

The ARM emulator holds the plan and publishes it to `<state>/faults/plan.json` whenever it
changes; the git server, a process of its own, follows that file (PlanFollower).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("throttle", "server_error", "reset", "delay", "lro_failed")
WHEN = ("before", "after")
# The services whose keys start with their own word, the keys each has, the kinds that make
# sense there (git's smart HTTP has no throttling answer; Storage throttles with 503).
SERVICE_KEYS = {"GIT": ("GIT GET", "GIT POST"), "BLOB": ("BLOB GET", "BLOB HEAD")}
SERVICE_KINDS = {
    "GIT": ("server_error", "reset", "delay"),
    "BLOB": ("throttle", "server_error", "reset", "delay"),
}
_RULE_FIELDS = {"match", "rate", "kind", "status", "retryAfter", "seconds", "when", "count"}
_PLAN_FIELDS = {"seed", "rules", "ssh"}
_SSH_FIELDS = {"dropRate", "everySeconds"}
MAX_DELAY_SECONDS = 600.0
MAX_RETRY_AFTER = 3600

log = logging.getLogger(__name__)


def service_of(text: str) -> str | None:
    """GIT or BLOB when a key or pattern names that service first; None: ARM and Key Vault."""
    first = text.split(" ", 1)[0].upper()
    return first if first in SERVICE_KEYS else None


class FaultPlanError(ValueError):
    """A plan that cannot be used; the message names the field."""


@dataclass(frozen=True)
class FaultRule:
    match: str
    rate: float
    kind: str
    status: int = 503
    retry_after: int = 1
    seconds: float = 0.0
    when: str = "before"
    count: int | None = None

    def matches(self, key: str) -> bool:
        return service_of(self.match) == service_of(key) and fnmatch.fnmatchcase(
            key.lower(), self.match.lower()
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"match": self.match, "rate": self.rate, "kind": self.kind}
        if self.kind == "server_error":
            data["status"] = self.status
        if self.kind == "throttle" and service_of(self.match) is None:  # GIT, BLOB: none
            data["retryAfter"] = self.retry_after
        if self.kind == "delay":
            data["seconds"] = self.seconds
        if self.when != "before":
            data["when"] = self.when
        if self.count is not None:
            data["count"] = self.count
        return data


@dataclass(frozen=True)
class SshDrops:
    drop_rate: float = 0.0
    every_seconds: float = 5.0


@dataclass(frozen=True)
class FaultPlan:
    seed: int = 0
    rules: tuple[FaultRule, ...] = ()
    ssh: SshDrops = field(default_factory=SshDrops)

    @property
    def empty(self) -> bool:
        return not self.rules and self.ssh.drop_rate == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "rules": [rule.to_json() for rule in self.rules],
            "ssh": {"dropRate": self.ssh.drop_rate, "everySeconds": self.ssh.every_seconds},
        }


@dataclass(frozen=True)
class Fault:
    """What to do to one call."""

    kind: str
    status: int = 503
    retry_after: int = 1
    seconds: float = 0.0
    when: str = "before"


def parse_plan(data: Any) -> FaultPlan:
    """The plan `data` describes; FaultPlanError naming the first field that is wrong."""
    if not isinstance(data, dict):
        raise FaultPlanError("plan: must be a JSON object")
    _no_unknown(data, _PLAN_FIELDS, "plan")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise FaultPlanError("seed: must be an integer")
    rules = data.get("rules", [])
    if not isinstance(rules, list) or len(rules) > 100:
        raise FaultPlanError("rules: must be a list of at most 100 rules")
    ssh = data.get("ssh", {})
    if not isinstance(ssh, dict):
        raise FaultPlanError("ssh: must be an object")
    _no_unknown(ssh, _SSH_FIELDS, "ssh")
    drops = SshDrops(
        drop_rate=_rate(ssh.get("dropRate", 0.0), "ssh.dropRate"),
        every_seconds=_number(ssh.get("everySeconds", 5.0), "ssh.everySeconds", 0.1, 3600),
    )
    return FaultPlan(
        seed=seed, rules=tuple(_rule(r, f"rules[{i}]") for i, r in enumerate(rules)), ssh=drops
    )


def read_plan(path: Path) -> FaultPlan:
    try:
        return parse_plan(json.loads(path.read_text()))
    except json.JSONDecodeError as error:
        raise FaultPlanError(f"plan: not JSON ({error.msg})") from error


def _rule(data: Any, where: str) -> FaultRule:
    if not isinstance(data, dict):
        raise FaultPlanError(f"{where}: must be an object")
    _no_unknown(data, _RULE_FIELDS, where)
    match = data.get("match")
    if not isinstance(match, str) or not 1 <= len(match) <= 200:
        raise FaultPlanError(f"{where}.match: must be a pattern of 1 to 200 characters")
    kind = data.get("kind")
    if kind not in KINDS:
        raise FaultPlanError(f"{where}.kind: must be one of {', '.join(KINDS)}")
    when = data.get("when", "before")
    if when not in WHEN:
        raise FaultPlanError(f"{where}.when: must be before or after")
    status = data.get("status", 503)
    if status not in (500, 503):
        raise FaultPlanError(f"{where}.status: must be 500 or 503")
    count = data.get("count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
        raise FaultPlanError(f"{where}.count: must be a whole number of at least 0")
    _check_service_rule(match, kind, when, where, "retryAfter" in data)
    return FaultRule(
        match=match,
        rate=_rate(data.get("rate", 1.0), f"{where}.rate"),
        kind=kind,
        status=status,
        retry_after=int(_number(data.get("retryAfter", 1), f"{where}.retryAfter", 0, 3600)),
        seconds=_number(data.get("seconds", 0.0), f"{where}.seconds", 0, MAX_DELAY_SECONDS),
        when=when,
        count=count,
    )


def _check_service_rule(match: str, kind: str, when: str, where: str, retry_after: bool) -> None:
    service = service_of(match)
    if service is None:
        return
    keys = SERVICE_KEYS[service]
    if not any(fnmatch.fnmatchcase(key.lower(), match.lower()) for key in keys):
        raise FaultPlanError(
            f"{where}.match: {match} matches no {service} call ({', '.join(keys)})"
        )
    if kind not in SERVICE_KINDS[service]:
        kinds = ", ".join(SERVICE_KINDS[service])
        raise FaultPlanError(f"{where}.kind: a {service} rule must be one of {kinds}")
    if when == "after" and kind != "reset":
        raise FaultPlanError(f"{where}.when: a {service} rule takes after only with kind reset")
    if retry_after:  # Storage's 503 ServerBusy carries none (blob_fault_proxy.py)
        raise FaultPlanError(f"{where}.retryAfter: a {service} answer carries no Retry-After")


def _no_unknown(data: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise FaultPlanError(f"{where}.{unknown[0]}: unknown field")


def _number(value: Any, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise FaultPlanError(f"{where}: must be a number from {low:g} to {high:g}")
    return float(value)


def _rate(value: Any, where: str) -> float:
    return _number(value, where, 0.0, 1.0)


def chance(seed: int, *parts: object) -> float:
    """A number in [0, 1) fixed by the seed and `parts` (the same on every run and machine)."""
    text = ":".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") / 2.0**64


class FaultInjector:
    """Decides, call by call, which fault of the current plan (if any) a call gets."""

    def __init__(self, plan: FaultPlan | None = None, publish_to: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._plan = plan or FaultPlan()
        self._calls: dict[tuple[int, str], int] = {}
        self._fired: dict[int, int] = {}
        self.injected: dict[str, int] = {}  # "<kind> <key>" -> how many times
        # Where other processes (the git server) read the plan; written at once and on replace.
        self._publish_to = publish_to
        if publish_to is not None:
            publish_plan(publish_to, self._plan)

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    def replace(self, plan: FaultPlan) -> None:
        """Use `plan` from now on; the call counts and the injected tally start again."""
        with self._lock:
            self._plan = plan
            self._calls.clear()
            self._fired.clear()
            self.injected.clear()
            if self._publish_to is not None:
                publish_plan(self._publish_to, plan)

    def add(self, rule: FaultRule) -> None:
        """Add one rule to the current plan (its counts start at zero)."""
        with self._lock:
            self._plan = FaultPlan(self._plan.seed, (*self._plan.rules, rule), self._plan.ssh)

    def drop(self, predicate: Any) -> None:
        """Remove the rules `predicate(rule)` holds for."""
        with self._lock:
            kept = tuple(r for r in self._plan.rules if not predicate(r))
            self._plan = FaultPlan(self._plan.seed, kept, self._plan.ssh)
            self._calls.clear()
            self._fired.clear()

    def decide(self, key: str) -> Fault | None:
        """The fault the call `key` gets now, the first rule that fires; None: answer it."""
        with self._lock:
            for index, rule in enumerate(self._plan.rules):
                if not rule.matches(key):
                    continue
                if rule.count is not None and self._fired.get(index, 0) >= rule.count:
                    continue
                nth = self._calls.get((index, key.lower()), 0)
                self._calls[(index, key.lower())] = nth + 1
                if chance(self._plan.seed, index, key.lower(), nth) >= rule.rate:
                    continue
                self._fired[index] = self._fired.get(index, 0) + 1
                label = f"{rule.kind} {key}"
                self.injected[label] = self.injected.get(label, 0) + 1
                return Fault(rule.kind, rule.status, rule.retry_after, rule.seconds, rule.when)
        return None

    def ssh_drop_due(self, vm: str, tick: int) -> bool:
        """Whether VM `vm`'s SSH connections are cut at the `tick`-th check (every
        `ssh.everySeconds`)."""
        with self._lock:
            rate = self._plan.ssh.drop_rate
            return rate > 0 and chance(self._plan.seed, "ssh", vm.lower(), tick) < rate

    def count(self, label: str, times: int = 1) -> None:
        """Tally a fault injected outside `decide` (an SSH drop)."""
        with self._lock:
            self.injected[label] = self.injected.get(label, 0) + times

    def report(self) -> dict[str, Any]:
        """The plan and every fault injected under it, those of the following processes too."""
        with self._lock:
            injected = dict(self.injected)
            if self._publish_to is not None:
                for label, times in read_tallies(self._publish_to).items():
                    injected[label] = injected.get(label, 0) + times
            return {"plan": self._plan.to_json(), "injected": injected}


def plan_file(state_dir: Path) -> Path:
    """Where an instance's current plan is published for its other processes."""
    return state_dir / "faults" / "plan.json"


def _write_atomically(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def publish_plan(path: Path, plan: FaultPlan) -> None:
    """Write `plan` to `path` (atomically) and forget the followers' tallies of the old one."""
    for tally in path.parent.glob("injected-*.json"):
        tally.unlink(missing_ok=True)
    _write_atomically(path, plan.to_json())


def read_tallies(path: Path) -> dict[str, int]:
    """The faults the followers of the plan at `path` injected, summed."""
    total: dict[str, int] = {}
    for tally in path.parent.glob("injected-*.json"):
        try:
            data = json.loads(tally.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        for label, times in data.items():
            if isinstance(label, str) and isinstance(times, int):
                total[label] = total.get(label, 0) + times
    return total


class PlanFollower:
    """The plan another process publishes at `path`, applied in this one (named `name`).

    The file is looked at on every decision (one stat); a new plan starts its counts afresh,
    as FaultInjector.replace does. No file, or one that does not parse: no faults."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.injector = FaultInjector()
        self._tally = path.with_name(f"injected-{name}.json")
        self._seen: tuple[int, int, int] | None = None

    def decide(self, key: str) -> Fault | None:
        self._refresh()
        fault = self.injector.decide(key)
        if fault is not None:
            _write_atomically(self._tally, self.injector.report()["injected"])
        return fault

    def _refresh(self) -> None:
        try:
            stat = self.path.stat()
            seen: tuple[int, int, int] | None = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except OSError:
            seen = None
        if seen == self._seen:
            return
        self._seen = seen
        plan = FaultPlan()
        if seen is not None:
            try:
                plan = read_plan(self.path)
            except (OSError, FaultPlanError) as error:
                log.warning("fault plan %s not used: %s", self.path, error)
        self.injector.replace(plan)
