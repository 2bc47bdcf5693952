"""One round of chaos: N builds at once under a fault plan and outside faults, then the tally.

Each build follows its own seeded script (random.Random(f"{seed}:{index}")): in which stage,
and how many seconds into it, the Functions host is killed, Azurite restarted, the stage's
message delivered twice, or the build VM / image deleted or deallocated out of band. The
host kill and the Azurite restart are instance-wide; one lock keeps them from overlapping.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.queue import QueueServiceClient

from localcloud.chaos import outside
from localcloud.chaos.instance import Instance
from localcloud.instance import REPO_ROOT
from shared.azure.clients import AzureClients
from shared.azure.naming import BUILD_TAG, ROLE_TAG
from shared.settings import read_settings
from shared.state.store import BuildNotFound, BuildStore

TERMINAL = {"succeeded", "failed", "cancelled"}
# Where each outside fault may strike (the stages in which it means something).
INSIDE = {
    "kill_host": ("provision", "mount", "install", "verify", "capture", "relaunch"),
    "restart_azurite": ("provision", "install", "verify", "capture", "relaunch"),
    "duplicate": ("provision", "mount", "install", "verify", "capture", "relaunch"),
    "delete_vm": ("install", "verify"),
    "deallocate_vm": ("install", "verify"),
    "delete_image": ("relaunch",),
}
OUT_OF_BAND = ("delete_vm", "deallocate_vm", "delete_image")
# What a clean failure's error must name, per out-of-band fault.
NAMED = {"delete_vm": ("vm",), "deallocate_vm": ("vm",), "delete_image": ("image",)}
STRIKE_WITHIN_S = 20.0


@dataclass
class Strike:
    fault: str
    stage: str
    after_s: float
    done: bool = False
    result: str = ""


@dataclass
class Followed:
    index: int
    build_id: str = ""
    strikes: list[Strike] = field(default_factory=list)
    stages_seen: list[str] = field(default_factory=list)
    final: dict[str, Any] | None = None
    lost: bool = False
    max_vms: int = 0  # the most VMs of one role (build, relaunch) seen at once
    images: set[str] = field(default_factory=set)
    ended_at: float | None = None


def plan_strikes(seed: int, index: int, faults: tuple[str, ...]) -> list[Strike]:
    rng = random.Random(f"{seed}:{index}")
    return [Strike(f, rng.choice(INSIDE[f]), rng.uniform(0, STRIKE_WITHIN_S)) for f in faults]


class Round:
    """N builds submitted together, followed until they end or `timeout_s` passes."""

    def __init__(
        self,
        instance: Instance,
        seed: int,
        builds: int,
        faults: tuple[str, ...],
        label: str,
        one_each: bool = False,
    ) -> None:
        self.instance = instance
        self.seed = seed
        self.label = label
        # one_each: build i gets only faults[i % len(faults)] (each out-of-band deletion on
        # its own build); else every build gets every fault.
        self.followed = [
            Followed(
                i,
                strikes=plan_strikes(
                    seed, i, (faults[i % len(faults)],) if one_each and faults else faults
                ),
            )
            for i in range(builds)
        ]
        self.instance_wide = threading.Lock()
        settings = read_settings(instance.settings)
        self.group = settings.resource_group
        self.azure = AzureClients(settings)
        self.store = BuildStore.from_connection_string(settings.storage_connection, "builds")
        self.log: list[str] = []

    # --- running -----------------------------------------------------------------------------
    def run(self, timeout_s: float) -> float:
        """Submit, follow, wait; the wall time from the first submit to the last end."""
        started = time.monotonic()
        for build in self.followed:
            build.build_id = self._submit(build.index)
        threads = [
            threading.Thread(target=self._follow, args=(b, started + timeout_s), daemon=True)
            for b in self.followed
        ]
        watcher = threading.Thread(target=self._watch_resources, daemon=True)
        for thread in [*threads, watcher]:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(1.0, started + timeout_s + 120 - time.monotonic()))
        self._stop = True
        ends = [b.ended_at for b in self.followed if b.ended_at is not None]
        return (max(ends) if ends else time.monotonic()) - started

    _stop = False

    def _submit(self, index: int) -> str:
        request = json.loads((REPO_ROOT / "examples" / "seed-request.json").read_text())
        git_port = self.instance.env["ports"]["git"]
        for repo in request["repositories"]:
            repo["url"] = repo["url"].replace(":8445/", f":{git_port}/")
        request["name"] = f"chaos-{self.label}-{index}"
        request["image"]["name"] = f"jupyter-chaos-{self.label}-{self.seed}-{index}"
        for _ in range(60):
            code, body = self.instance.api("POST", "/api/builds", request)
            if code == 202:
                return str(body["id"])
            time.sleep(1)
        raise RuntimeError(f"build {index} was not accepted: {code} {body}")

    def _follow(self, build: Followed, deadline: float) -> None:
        entered: dict[str, float] = {}
        misses = 0
        while time.monotonic() < deadline:
            code, status = self.instance.api("GET", f"/api/builds/{build.build_id}")
            if code == 404:
                misses += 1
                if misses > 30:
                    build.lost = True
                    return
            if code != 200:
                time.sleep(1)
                continue
            misses = 0
            stage = str(status.get("stage") or "")
            if stage and stage not in entered:
                entered[stage] = time.monotonic()
                build.stages_seen.append(stage)
            if status["state"] in TERMINAL:
                build.final = status
                build.ended_at = time.monotonic()
                return
            for strike in build.strikes:
                if strike.done or strike.stage != stage:
                    continue
                if time.monotonic() - entered[stage] >= strike.after_s:
                    strike.done = True
                    strike.result = self._strike(build, strike)
                    self.log.append(f"{build.build_id} {strike.fault} in {stage}: {strike.result}")
            time.sleep(1)
        build.final = self.instance.api("GET", f"/api/builds/{build.build_id}")[1]

    def _strike(self, build: Followed, strike: Strike) -> str:
        state_dir = self.instance.state_dir
        try:
            if strike.fault == "kill_host":
                with self.instance_wide:
                    return f"host away {outside.kill_functions_host(state_dir):.1f} s"
            if strike.fault == "restart_azurite":
                with self.instance_wide:
                    return f"storage away {outside.restart_azurite(state_dir):.1f} s"
            if strike.fault == "duplicate":
                record = self.store.get(build.build_id).build
                body = outside.stage_message(record.id, record.stage.value, record.token)
                outside.deliver_twice(self.instance.storage, f"build-{record.stage.value}", body)
                return f"{record.stage.value} message sent twice more"
            return self._out_of_band(build, strike.fault)
        except (outside.OutsideFaultError, AzureError, BuildNotFound, OSError) as error:
            # Storage or the host may be away (another build's fault): the strike is lost.
            return f"not done: {type(error).__name__}: {error}"

    def _out_of_band(self, build: Followed, fault: str) -> str:
        compute = self.azure.compute
        kind = "images" if fault == "delete_image" else "virtual_machines"
        names = outside.tagged(compute, self.group, kind, BUILD_TAG, build.build_id)
        if not names:
            return f"not done: no {kind} of the build yet"
        for name in names:
            if fault == "deallocate_vm":
                outside.deallocate_vm(compute, self.group, name)
            else:
                outside.delete_resource(compute, self.group, kind, name)
        return f"{fault} {', '.join(names)}"

    def _watch_resources(self) -> None:
        """Every few seconds: how many VMs each build has at once, which images it made."""
        by_id = {b.build_id: b for b in self.followed}
        while not self._stop:
            try:
                vms = list(self.azure.compute.virtual_machines.list(self.group))
                images = list(self.azure.compute.images.list_by_resource_group(self.group))
            except (AzureError, OSError):
                time.sleep(3)
                continue
            # Per role: the relaunch VM is created while the build VM is still being deleted
            # (by design); two VMs of one role at once would be a duplicate.
            counts: dict[tuple[str, str], int] = {}
            for vm in vms:
                tags = vm.tags or {}
                owner = tags.get(BUILD_TAG)
                if owner in by_id:
                    key = (owner, tags.get(ROLE_TAG, ""))
                    counts[key] = counts.get(key, 0) + 1
            for (owner, _), count in counts.items():
                by_id[owner].max_vms = max(by_id[owner].max_vms, count)
            for image in images:
                owner = (image.tags or {}).get(BUILD_TAG)
                if owner in by_id:
                    by_id[owner].images.add(str(image.name))
            time.sleep(3)

    # --- the tally -----------------------------------------------------------------------------
    def leftovers(self, build_id: str, final: dict[str, Any] | None = None) -> list[str]:
        """Every resource of the build group still tagged with the build, except what a
        succeeded build made for its user (its image or gallery version)."""
        query = f"tagName eq '{BUILD_TAG}' and tagValue eq '{build_id}'"
        try:
            found = self.azure.resources.resources.list_by_resource_group(self.group, filter=query)
            ids = [str(r.id) for r in found]
        except ResourceNotFoundError:
            return []
        return [i for i in ids if i.lower() not in products(final)]

    def tally(self, run_sweeper: Callable[[], None]) -> dict[str, Any]:
        outcome: dict[str, Any] = {
            "builds": len(self.followed),
            "succeeded": 0,
            "failed_cleanly": 0,
            "failed_other": 0,
            "stuck": 0,
            "lost": 0,
            "duplicated": 0,
        }
        details = []
        for build in self.followed:
            verdict = self._verdict(build)
            outcome[verdict] += 1
            if build.max_vms > 1 or len(build.images) > 1:
                outcome["duplicated"] += 1
            details.append(
                {
                    "id": build.build_id,
                    "verdict": verdict,
                    "error": (build.final or {}).get("error"),
                    "stages": build.stages_seen,
                    "strikes": [
                        {"fault": s.fault, "stage": s.stage, "done": s.done, "result": s.result}
                        for s in build.strikes
                    ],
                    "max_vms_of_one_role_at_once": build.max_vms,
                    "images": sorted(build.images),
                }
            )
        ended = {
            b.build_id: b.final for b in self.followed if b.final and b.final["state"] in TERMINAL
        }
        leaked = {i: left for i, final in ended.items() if (left := self.leftovers(i, final))}
        outcome["leaked_after_cleanup"] = sum(len(v) for v in leaked.values())
        if leaked:
            run_sweeper()
            leaked = {i: left for i in leaked if (left := self.leftovers(i, ended[i]))}
        outcome["leaked_after_sweeper"] = sum(len(v) for v in leaked.values())
        outcome["leaked_resources"] = leaked
        outcome["poison_messages"] = poison_messages(self.instance.storage)
        outcome["details"] = details
        outcome["outside_faults"] = self.log
        return outcome

    def _verdict(self, build: Followed) -> str:
        if build.lost or build.final is None:
            return "lost"
        state = build.final.get("state")
        if state == "succeeded":
            return "succeeded"
        if state not in TERMINAL:
            return "stuck"
        error = str(build.final.get("error") or "").lower()
        struck = [s.fault for s in build.strikes if s.done and s.fault in OUT_OF_BAND]
        if struck and all(any(w in error for w in NAMED[f]) for f in struck):
            return "failed_cleanly"
        return "failed_other"


def products(final: dict[str, Any] | None) -> set[str]:
    """The ids (lower case) of what a succeeded build leaves on purpose: its image and gallery
    version. Anything else still tagged with a finished build is a leak."""
    if not final or final.get("state") != "succeeded":
        return set()
    kept = (final.get("image_id"), final.get("gallery_image_version_id"))
    return {str(i).lower() for i in kept if i}


def poison_messages(connection: str) -> dict[str, int]:
    service = QueueServiceClient.from_connection_string(connection)
    found = {}
    for queue in service.list_queues():
        if queue.name.endswith("-poison"):
            count = service.get_queue_client(queue.name).get_queue_properties()
            if count.approximate_message_count:
                found[queue.name] = int(count.approximate_message_count)
    return found
