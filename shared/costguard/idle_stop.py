"""Idle stop of the VMs labimage keeps: probe each over SSH, judge, deallocate the idle ones.

A kept VM is one in the scope that carries `labimage-build` (or `labimage-workstation`) and
`labimage-autostop` (labimage tags every VM it keeps so). Its address is its public IP, its keys
are the build's (the workstation's), its user is the request's. A VM that cannot be probed is
left running and named in problems: stopping a VM on a guess could kill someone's analysis.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from shared.azure import network, vms
from shared.azure.naming import AUTOSTOP_TAG, BUILD_TAG, WORKSTATION_TAG, BuildNames
from shared.costguard.actions import CostActions, StopAction
from shared.costguard.costs import report_stop
from shared.costguard.idle import BadIdleTag, idle_limit, judge
from shared.costguard.idle_probe import probe_activity
from shared.costguard.inventory import VmInfo, scan_scope
from shared.costguard.prices import default_prices
from shared.errors import StepError
from shared.runtime import Runtime
from shared.ssh.errors import SshConnectionError
from shared.ssh.runner import SshTarget, connect
from shared.state.store import BuildNotFound
from shared.workstations import vm as ws_vm
from shared.workstations.actions import stopped_by_guard, workstation_of_vm

logger = logging.getLogger(__name__)


@dataclass
class IdleResult:
    stopped: list[str] = field(default_factory=list)
    active: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def kept_vms(vms_: list[VmInfo]) -> list[VmInfo]:
    """A build's kept VM or a workstation: labimage made it and it has an auto-stop tag."""
    made = (BUILD_TAG, WORKSTATION_TAG)
    return [v for v in vms_ if any(t in v.tags for t in made) and AUTOSTOP_TAG in v.tags]


async def run_idle_stop(rt: Runtime, actions: CostActions, now: datetime) -> IdleResult:
    """Probe every running kept VM; deallocate those idle past their limit.

    Each VM is judged on its own: whatever goes wrong with one (a malformed tag, a guest that
    answers nonsense, an ARM error) is one problem in the result and the others go on."""
    s = rt.settings
    result = IdleResult()
    inventory = scan_scope(rt.azure, s.autostop_scope, s.autostop_concurrency)
    for vm in kept_vms(inventory.vms):
        if vm.power != "running":
            continue
        try:
            await _judge_one(rt, actions, vm, now, result)
        except BadIdleTag as exc:
            result.problems.append(f"{vm.id}: {exc}")
            actions.record_problem(vm.id, now, str(exc))
        except (StepError, SshConnectionError, KeyError, BuildNotFound, ValueError) as exc:
            result.problems.append(f"{vm.id}: could not probe: {exc}")
        except Exception as exc:  # one VM never stops the run for the others
            logger.exception("idle stop: %s failed", vm.id)
            result.problems.append(f"{vm.id}: {type(exc).__name__}: {exc}")
    return result


async def _judge_one(
    rt: Runtime, actions: CostActions, vm: VmInfo, now: datetime, result: IdleResult
) -> None:
    s = rt.settings
    limit = idle_limit(vm.tags, s.idle_default_minutes)
    if limit is None:
        return
    target = _target(rt, vm)
    async with connect(target) as runner:
        activity = await probe_activity(runner)
    verdict = judge(activity, now, limit, actions.idle_since(vm.id), s.idle_cpu_percent)
    actions.set_idle_since(vm.id, verdict.idle_since, now)
    if not verdict.idle:
        result.active.append(vm.id)
        return
    vms.begin_deallocate(rt.azure, vm.name, vm.group)
    actions.set_idle_since(vm.id, None, now)
    action = StopAction(
        vm_id=vm.id,
        at=now,
        rule=f"idle {int(limit.total_seconds() // 60)} min",
        kind="idle",
        hourly_saved=default_prices().vm_per_hour(vm.size),
        size=vm.size,
        owner=vm.owner,
        project=vm.project,
    )
    actions.record_stop(action)
    report_stop(action.kind, action.hourly_saved)
    logger.info("idle stop: deallocating %s (%s)", vm.id, verdict.reason)
    stopped_by_guard(rt, vm.id, "idle stop", now)
    result.stopped.append(vm.id)


def _target(rt: Runtime, vm: VmInfo) -> SshTarget:
    if WORKSTATION_TAG in vm.tags:
        return _workstation_target(rt, vm)
    build_id = vm.tags[BUILD_TAG]
    build = rt.store.get(build_id).build
    names = BuildNames(build_id).vm(vm.tags.get("labimage-role", "relaunch"))
    # The VM probed must be the VM deallocated: a tag copied onto another VM must not let its
    # verdict come from the build's VM (or the other way round).
    if vm.name != names.vm or vm.group.lower() != rt.settings.resource_group.lower():
        raise ValueError(f"it carries {BUILD_TAG}={build_id} but is not that build's VM {names.vm}")
    address = network.public_ip_address(rt.azure, names)
    if not address:
        raise ValueError("the VM has no public address")
    user = str((build.request.get("vm") or {}).get("admin_username", "azureuser"))
    return SshTarget(
        host=address,
        port=22,
        username=user,
        client_private_key=rt.keys.load(build_id, "client").private_openssh,
        host_public_key=rt.keys.load(build_id, "host").public_line,
    )


def _workstation_target(rt: Runtime, vm: VmInfo) -> SshTarget:
    """A workstation's VM, probed with its own keys; as for builds, a copied tag never lets
    one VM's verdict come from another."""
    ws = workstation_of_vm(rt, vm.id)
    if ws is None or ws.id != vm.tags[WORKSTATION_TAG]:
        raise ValueError(f"it carries {WORKSTATION_TAG} but is not that workstation's VM")
    address = ws_vm.address_of(rt.azure, ws.id)
    if not address:
        raise ValueError("the VM has no public address")
    return ws_vm.ssh_target(ws, rt.keys, address)
