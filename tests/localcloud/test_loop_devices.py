"""A VM's disks are detached only while they are still its disks: a loop device a stale record
names may meanwhile hold another VM's disk (the kernel hands freed numbers out again), and
detaching that one cut a running build's data disk from under it (CI: "mount_disk: /dev/loop1 is
blank ... Input/output error")."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from localcloud.sandbox import disks

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loop devices need root")


def test_a_stale_detach_leaves_a_loop_device_that_now_holds_another_disk(tmp_path: Path) -> None:
    first, second = tmp_path / "first.img", tmp_path / "second.img"
    for disk in (first, second):
        disks.new_data_disk(disk, 1)
    device = disks.attach(first)
    try:
        disks.detach(device, backing=str(first))
        # The same number, now another VM's disk.
        subprocess.run(["losetup", device, str(second)], check=True)
        disks.detach(device, backing=str(first))  # a record of the first VM, seen again
        held = {d.device: d.backing_file for d in disks.list_loops()}
        assert held.get(device) == str(second)
    finally:
        disks.detach(device)
    assert device not in {d.device for d in disks.list_loops()}
