"""The recipe end to end on localcloud: real controller, Azure SDK, SSH, disks and sandboxes.

The builds run side by side (as they would for several researchers), so the whole module costs
about one build's time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from localcloud.seed_content import raising_repository
from shared.artifacts import get_json
from shared.azure.naming import BUILD_TAG
from tests.e2e.conftest import PORTS, ROOT, Cloud

pytestmark = [pytest.mark.e2e, pytest.mark.root]


@pytest.fixture(scope="module")
def builds(cloud: Cloud) -> Iterator[dict[str, str]]:
    """Submit every build of this module at once; tests then wait for the one they need.

    The cancel and the kill happen in background threads the moment their build reaches
    install, so they do not wait for the other builds' tests.
    """
    raising_repository(cloud.state_dir / "git")
    broken = cloud.seed_request(name="broken-notebook")
    broken["repositories"][0]["url"] = f"https://127.0.0.1:{PORTS['git']}/broken-notebooks.git"
    broken["image"] = {"name": "never-made"}
    ids = {
        # The seed goes through the build-requests queue, as another service would send it.
        "seed": cloud.submit_via_queue(cloud.seed_request(), SEED_REPLIES),
        "broken": cloud.submit(broken),
        "cancel": cloud.submit(cloud.seed_request(name="cancel-me", image={"name": "cancel-me"})),
        "kill": cloud.submit(cloud.seed_request(name="kill-me", image={"name": "kill-me"})),
        "keep": cloud.submit(gallery_keep_request(cloud)),
    }
    actions = {"cancel": cancel_in_install, "kill": kill_in_install}
    with ThreadPoolExecutor(max_workers=2) as pool:
        ACTIONS.update({name: pool.submit(act, cloud, ids[name]) for name, act in actions.items()})
        yield ids


ACTIONS: dict[str, Future[Any]] = {}
SEED_REPLIES = "e2e-seed-replies"


def in_install(status: dict[str, Any]) -> bool:
    return status["stage"] == "install"


def cancel_in_install(cloud: Cloud, build_id: str) -> int:
    cloud.wait(build_id, until=in_install)
    code, _ = cloud.request("POST", f"/api/builds/{build_id}/cancel")
    return code


def kill_in_install(cloud: Cloud, build_id: str) -> int:
    cloud.wait(build_id, until=in_install)
    record = sandbox_of(cloud, f"{build_id}-build")
    assert record is not None, "the build VM's sandbox is not running"
    pid = int(record["init"][0])
    os.kill(pid, signal.SIGKILL)
    return pid


def gallery_keep_request(cloud: Cloud) -> dict[str, Any]:
    """examples/gallery-keep-running.json, on this instance (Python 3.11: offline, uv cannot
    download another Python, so the system's is used)."""
    request = json.loads((ROOT / "examples" / "gallery-keep-running.json").read_text())
    request["python"]["version"] = "3.11"
    for repo in request["repositories"]:
        repo["url"] = repo["url"].replace(":8445/", f":{PORTS['git']}/")
    request["image"]["name"] = "jupyter-ooi-kept"
    request["autostop"] = {"time": "23:59", "time_zone": NOT_DUE_ZONE}
    return request


def not_due_zone() -> str:
    """A fixed-offset zone where it is about 06:00 now, so a 23:59 stop is far away and the
    instance's auto-stop timer cannot stop the kept VM while the test uses it."""
    offset = (datetime.now(UTC).hour - 6) % 24
    offset = offset - 24 if offset > 12 else offset
    return f"Etc/GMT{offset:+d}"


NOT_DUE_ZONE = not_due_zone()  # once per run, so an hour turning mid-test changes nothing


def leftovers(cloud: Cloud, build_id: str) -> list[str]:
    """Every VM, NIC, public IP, disk, network or image in the emulator tagged with the build."""
    azure = cloud.azure()
    group = cloud.settings.resource_group
    found = []
    for listing in (
        azure.compute.virtual_machines.list(group),
        azure.compute.disks.list_by_resource_group(group),
        azure.compute.images.list_by_resource_group(group),
        azure.network.network_interfaces.list(group),
        azure.network.public_ip_addresses.list(group),
        azure.network.virtual_networks.list(group),
        azure.network.network_security_groups.list(group),
    ):
        found += [str(r.id) for r in listing if (r.tags or {}).get(BUILD_TAG) == build_id]
    return found


def sandbox_of(cloud: Cloud, computer_name: str) -> dict[str, Any] | None:
    """The run record of the sandbox whose hostname is `computer_name`, if it runs."""
    for media in (cloud.state_dir / "vms").glob("*/media/config.json"):
        if json.loads(media.read_text()).get("hostname") == computer_name:
            run = media.parent.parent / "run.json"
            if run.exists():
                return dict(json.loads(run.read_text()))
    return None


def test_the_seed_request_succeeds_end_to_end(cloud: Cloud, builds: dict[str, str]) -> None:
    build_id = builds["seed"]
    status = cloud.wait(build_id)
    assert status["state"] == "succeeded", status["error"]
    assert [s["name"] for s in status["stages"]] == [
        "provision",
        "mount",
        "install",
        "verify",
        "capture",
        "relaunch",
        "cleanup",
    ]
    outputs = cloud.store().get(build_id).build.outputs

    # The data disk: xfs, mounted at /datadrive by its UUID.
    disk = outputs["data_disk"]
    assert disk["fs"] == "xfs" and disk["mount_point"] == "/datadrive" and disk["uuid"]
    # The packages import inside the VM; the data arrived with matching checksums.
    python = outputs["install"]["python"]
    assert not python.get("failed"), python
    data = outputs["install"]["data-0"]
    # The record keeps a summary; the full file list is a content-addressed blob.
    files = get_json(cloud.settings, None, data["manifest"]["blob"])["files"]
    assert data["files"] == len(files) > 0 and all(f["md5_verified"] for f in files)
    # Notebooks ran on the build VM and again on the relaunched one.
    reports = {r["vm"]: r for r in status["verification"]}
    for vm in ("build", "relaunch"):
        assert reports[vm]["jupyter_ok"]
        assert [n["status"] for n in reports[vm]["notebooks"]] == ["passed"]
    # The relaunched VM had the disk mounted by fstab alone (no mount step ran there).
    mount = outputs["relaunch_mount"]
    assert mount["mounted"] and mount["in_fstab_by_uuid"] and mount["uuid"] == disk["uuid"]
    # The image exists; nothing else of the build is left, in the emulator or on the host.
    image = cloud.azure().compute.images.get(
        cloud.settings.resource_group, "jupyter-ooi-ubuntu2404"
    )
    assert image.id == status["image_id"]
    assert leftovers(cloud, build_id) == [status["image_id"]]
    assert sandbox_of(cloud, f"{build_id}-build") is None
    assert sandbox_of(cloud, f"{build_id}-relaunch") is None
    # It came from the queue: its reply queue heard the outcome after the acceptance.
    outcome = cloud.next_reply(SEED_REPLIES)
    assert outcome["status"] == "succeeded" and outcome["id"] == build_id
    assert outcome["image_id"] == status["image_id"]


def test_a_raising_notebook_fails_the_build_at_verify_and_leaves_nothing(
    cloud: Cloud, builds: dict[str, str]
) -> None:
    status = cloud.wait(builds["broken"])
    assert status["state"] == "failed"
    assert status["error"].startswith("verify failed: notebook notebooks/broken.ipynb failed")
    assert "ValueError: the calibration table is missing" in status["error"]
    verify = next(s for s in status["stages"] if s["name"] == "verify")
    assert verify["state"] == "failed"
    assert leftovers(cloud, builds["broken"]) == []


def test_cancel_during_install_leaves_nothing(cloud: Cloud, builds: dict[str, str]) -> None:
    build_id = builds["cancel"]
    assert ACTIONS["cancel"].result(timeout=900) == 202
    status = cloud.wait(build_id)
    assert status["state"] == "cancelled"
    assert leftovers(cloud, build_id) == []


def test_a_vm_killed_from_outside_fails_the_build_clearly(
    cloud: Cloud, builds: dict[str, str]
) -> None:
    build_id = builds["kill"]
    assert ACTIONS["kill"].result(timeout=900) > 1
    status = cloud.wait(build_id)
    assert status["state"] == "failed"
    assert "stopped unexpectedly" in status["error"]
    assert leftovers(cloud, build_id) == []


def test_a_kept_vm_runs_from_the_gallery_image_and_its_ssh_command_works(
    cloud: Cloud, builds: dict[str, str]
) -> None:
    build_id = builds["keep"]
    status = cloud.wait(build_id)
    assert status["state"] == "succeeded", status["error"]
    assert status["gallery_image_version_id"].endswith(
        "/galleries/labimage_gallery/images/jupyter-ooi/versions/1.0.0"
    )
    azure = cloud.azure()
    group = cloud.settings.resource_group
    kept = azure.compute.virtual_machines.get(group, f"labimage-{build_id}-relaunch")
    assert (kept.tags or {})["labimage-autostop"] == f"23:59 {NOT_DUE_ZONE}"
    # What is left of the build is exactly the image, the gallery version and the kept VM with
    # what it needs; the build VM is gone.
    left = {r.rsplit("/", 1)[-1] for r in leftovers(cloud, build_id)}
    assert f"labimage-{build_id}-build" not in left
    assert {f"labimage-{build_id}-relaunch", "jupyter-ooi-kept"} <= left

    # The ssh command the build reports works, with OpenSSH and the host key pinned.
    connection = status["connection"]
    keys = Path(cloud.settings.ssh_key_dir or "")
    host_key = (keys / f"{build_id}.host.pub").read_text().split()
    address = connection["ssh_command"].rsplit("@", 1)[1]
    assert connection["known_hosts_line"] == f"{address} {host_key[0]} {host_key[1]}"
    known_hosts = keys / f"{build_id}.known_hosts"
    known_hosts.write_text(connection["known_hosts_line"] + "\n")
    # The command as reported (pinned host key, strict checking), with this test's file paths.
    command = connection["ssh_command"].split()
    command[command.index("-i") + 1] = str(keys / f"{build_id}.client")
    assert "StrictHostKeyChecking=yes" in command
    command[command.index(f"UserKnownHostsFile={connection['known_hosts_file']}")] = (
        f"UserKnownHostsFile={known_hosts}"
    )
    ran = subprocess.run(
        [
            *command[:1],
            "-o",
            "BatchMode=yes",
            *command[1:],
            "findmnt",
            "-n",
            "-o",
            "SOURCE,FSTYPE",
            "/datadrive",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert "xfs" in ran.stdout
    azure.compute.virtual_machines.begin_delete(group, str(kept.name)).result()


def test_no_sandbox_is_left_on_the_host(cloud: Cloud, builds: dict[str, str]) -> None:
    for build_id in builds.values():
        cloud.wait(build_id)
    assert not any((cloud.state_dir / "vms").glob("*/run.json"))
    tag = Path(cloud.state_dir).name
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert str(cloud.state_dir) not in loops, loops
    assert tag not in namespaces
