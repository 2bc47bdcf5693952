"""Remove everything one state folder created, from a scan of the machine (works after a crash).

It touches only objects named after the state folder (netns, veth, nft table), processes whose
command line names the folder or its namespaces, and loop devices and mounts under the folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from pathlib import Path

from localcloud.sandbox import disks, network
from localcloud.sandbox.commands import run
from localcloud.sandbox.layout import Layout
from localcloud.sandbox.processes import ProcessRef, processes_mentioning, wait_gone

logger = logging.getLogger(__name__)


def teardown_state_dir(layout: Layout) -> None:
    """Kill, delete, detach and unmount what `layout`'s state folder created; restore forwarding."""
    refs = _recorded_processes(layout)
    # only our own programs (sandbox launcher and init, relay) that name this folder's objects
    refs += processes_mentioning(
        [
            ("guest_init.py", str(layout.vms_dir) + "/"),
            ("relay.py", f"/run/netns/{layout.netns_prefix}"),
        ]
    )
    for ref in refs:
        ref.kill()
    if not wait_gone(refs, timeout=10):
        logger.warning("some sandbox processes of %s survive SIGKILL", layout.state_dir)
    for name in network.our_netns(layout):
        network.delete_netns(name)
    for veth in network.our_veths(layout):
        run(["ip", "link", "del", veth], check=False)
    for mount_point in _mounts_under(layout.state_dir):
        run(["umount", "-l", mount_point], check=False)
    for loop in disks.loops_under(layout.state_dir):
        disks.detach(loop.device)
    network.remove_nat(layout)
    network.restore_forwarding(layout)
    for vm_dir in layout.vms_dir.glob("*"):
        for leftover in ("run.json", "boot.json"):
            (vm_dir / leftover).unlink(missing_ok=True)
        shutil.rmtree(vm_dir / "media", ignore_errors=True)


def _recorded_processes(layout: Layout) -> list[ProcessRef]:
    refs = []
    for run_file in layout.vms_dir.glob("*/run.json"):
        with contextlib.suppress(ValueError, OSError):
            data = json.loads(run_file.read_text())
            refs += [ProcessRef(*data[k]) for k in ("init", "launcher", "relay") if data.get(k)]
    return refs


def _mounts_under(folder: Path) -> list[str]:
    """Mount points below `folder` in the host's mount table, deepest first."""
    prefix = str(folder.resolve()).rstrip("/") + "/"
    points = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point.startswith(prefix):
            points.append(point)
    return sorted(points, key=len, reverse=True)
