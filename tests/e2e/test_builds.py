"""The recipe end to end on localcloud: real controller, Azure SDK, SSH, disks and sandboxes.

The builds run side by side (as they would for several researchers), so the whole module costs
about one build's time.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from localcloud.arm.kinds.vms import FIRST_BOOT_LOCK_TAG, vm_key
from localcloud.sandbox.layout import Layout
from localcloud.seed_content import OOI_CSV, ooi_csv, raising_repository, upload_data
from shared.artifacts import get_json
from shared.azure.naming import BUILD_TAG
from shared.manifest.tags import manifest_digest_from_tags
from shared.rebuild import DIGEST_TAG
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
        "seed": cloud.submit_via_queue(cloud.seed_request(tags=REALISTIC_FIRST_BOOT), SEED_REPLIES),
        "broken": cloud.submit(broken),
        "cancel": cloud.submit(cloud.seed_request(name="cancel-me", image={"name": "cancel-me"})),
        "kill": cloud.submit(cloud.seed_request(name="kill-me", image={"name": "kill-me"})),
        "keep": cloud.submit(gallery_keep_request(cloud)),
    }
    BUILD_IDS.update(ids)
    # The seed build's guest host key, read now: cleanup deletes the build's keys at the end.
    SECRETS["seed_host_key"] = (cloud.state_dir / "keys" / f"{ids['seed']}.host").read_text()
    actions = {
        "cancel": cancel_in_install,
        "kill": kill_in_install,
        "rebuild": rebuild_seed,
        "auto": rebuild_auto,
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        on = {"rebuild": "seed", "auto": "seed"}  # the build each action acts on, when not its own
        ACTIONS.update(
            {
                name: pool.submit(act, cloud, ids[on.get(name, name)])
                for name, act in actions.items()
            }
        )
        yield ids


ACTIONS: dict[str, Future[Any]] = {}
# The seed build's VMs hold dpkg's lock at first boot for as long as Ubuntu's apt-daily may (the
# instance's other VMs for a few seconds): localcloud's per-VM tag, the request's tags carry it.
REALISTIC_FIRST_BOOT = {"cost-center": "oceanography", FIRST_BOOT_LOCK_TAG: "45"}
SECRETS: dict[str, str] = {}
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


def past_install(status: dict[str, Any]) -> bool:
    return status["stage"] not in ("provision", "mount", "install") or status["state"] in (
        "succeeded",
        "failed",
        "cancelled",
    )


def changed_csv() -> bytes:
    """The seed CSV with its last row repeated: still the notebook's shape, other bytes."""
    data = ooi_csv()
    newline = b"\r\n" if b"\r\n" in data else b"\n"
    body = data.rstrip(b"\r\n")
    return body + newline + body.splitlines()[-1] + newline


def rebuild_seed(cloud: Cloud, seed_id: str) -> dict[str, Any]:
    """As soon as the seed build has its manifest: an exact rebuild from it; once that rebuild
    (and every other build of the module) has pulled its data, one blob changes, an exact
    rebuild is refused naming it, and a rebuild with data "latest" starts. The rebuilds run
    beside the module's other builds."""
    seed = cloud.wait(seed_id, timeout_s=1800, until=lambda s: s.get("manifest"))
    digest = seed["manifest"]["sha256"]
    exact = cloud.submit({"from_manifest": digest, "image_name": "ooi-rebuild-exact"})
    others = [b for b in ("broken", "keep") if b in BUILD_IDS]
    for build_id in [exact, *(BUILD_IDS[b] for b in others)]:
        cloud.wait(build_id, timeout_s=1800, until=past_install)
    upload_data(cloud.settings.storage_connection, "ooi-data", {f"AT4212/{OOI_CSV}": changed_csv()})
    refused = cloud.request("POST", "/api/builds", {"from_manifest": digest})
    latest = cloud.submit(
        {"from_manifest": digest, "data": "latest", "image_name": "ooi-rebuild-latest"}
    )
    return {"manifest": digest, "exact": exact, "refused": refused, "latest": latest}


def rebuild_auto(cloud: Cloud, seed_id: str) -> str:
    """Once the seed build has succeeded: the seed request again (data refreshed, another
    image name) with `rebuild: auto`, sent as the seed was (through the queue, so by the same
    owner: a rebuild only starts from its own owner's images), as a team's weekly job would."""
    cloud.wait(seed_id, timeout_s=1800)
    request = cloud.seed_request(rebuild="auto", image={"name": "ooi-rebuild-auto"})
    return cloud.submit_via_queue(request, "e2e-auto-replies")


BUILD_IDS: dict[str, str] = {}


def gallery_keep_request(cloud: Cloud) -> dict[str, Any]:
    """examples/gallery-keep-running.json, on this instance (Python 3.11: offline, uv cannot
    download another Python, so the system's is used)."""
    request = json.loads((ROOT / "examples" / "gallery-keep-running.json").read_text())
    request["python"]["version"] = "3.11"
    for repo in request["repositories"]:
        repo["url"] = repo["url"].replace(":8445/", f":{PORTS['git']}/")
    request["image"]["name"] = "jupyter-ooi-kept"
    # An NVMe-only size (v6): the data disk shows up at data/by-lun/<N> only.
    request["vm"]["size"] = NVME_SIZE
    request["autostop"] = {"time": "23:59", "time_zone": NOT_DUE_ZONE}
    return request


NVME_SIZE = "Standard_D2ads_v6"


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


def console_of(cloud: Cloud, vm_name: str) -> str:
    """The console log the sandbox of VM `vm_name` left on the host."""
    vm_id = (
        f"/subscriptions/{cloud.settings.subscription_id}/resourceGroups/"
        f"{cloud.settings.resource_group}/providers/Microsoft.Compute/virtualMachines/{vm_name}"
    )
    vm_dir = Layout.of(cloud.state_dir, "10.0.0.0/16").vm_dir(vm_key(vm_id))
    return (vm_dir / "console.log").read_text(errors="replace")


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
    assert disk["lun_link"] == "/dev/disk/azure/scsi1/lun0"  # a v5 size: SCSI
    assert status["security"]["type"] == "Standard"  # a managed image only
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
    # The install waited for the first-boot package job's dpkg lock (45 s) instead of failing.
    console = console_of(cloud, f"labimage-{build_id}-build")
    assert "holds the dpkg lock for 45 s" in console, console[-2000:]
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


SAS_SIGNATURE = re.compile(rb"[?&]sig=[A-Za-z0-9%+/=]{20,}")


def test_the_captured_images_hold_no_sas_no_private_key_and_no_job_folder(
    cloud: Cloud, builds: dict[str, str]
) -> None:
    """What a captured image's OS layer (the files the build changed over the base image) must
    not carry: the data SAS, the host private key handed in through custom data, job folders,
    cloud-init's record of the build VM, the admin user."""
    for name in ("seed", "keep"):
        assert cloud.wait(builds[name])["state"] == "succeeded"
    key_lines = SECRETS["seed_host_key"].strip().splitlines()[1:-1]
    key_marks = [line.encode() for line in key_lines if len(line) > 40]
    assert key_marks
    layers = sorted((cloud.state_dir / "images").glob("*/os/upper"))
    # The seed's managed image, and the kept build's gallery version (a Trusted Launch build
    # makes no managed image: Azure cannot make one from a Trusted Launch VM).
    assert sorted(layer.parts[-3].split("-")[0] for layer in layers) == ["gallery", "image"]
    for layer in layers:
        assert (layer / "opt" / "labimage" / "env" / "bin" / "python").exists()
        for gone in (
            "var/lib/labimage/jobs",
            "var/lib/cloud/instance",
            "var/lib/cloud/seed",
            "home/azureuser",
            "var/lib/waagent/ovf-env.xml",
        ):
            assert not (layer / gone).exists(), f"{layer}: {gone} is in the image"
        assert not list((layer / "etc" / "ssh").glob("ssh_host_*")), f"{layer}: host keys"
        for path in layer.rglob("*"):
            if not path.is_file() or path.is_symlink() or path.stat().st_size > 8 * 1024**2:
                continue
            if path.is_relative_to(layer / "opt" / "labimage"):
                continue  # the installed Python and packages (a gigabyte to read for nothing)
            data = path.read_bytes()
            assert not SAS_SIGNATURE.search(data), f"a SAS in {path}"
            assert not any(mark in data for mark in key_marks), f"the host key in {path}"


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
    # A gallery build is Trusted Launch: captured from the VM into the gallery, no managed image
    # (Azure makes none from a Trusted Launch VM); the kept VM runs from the gallery version, on
    # the NVMe size, where the mount step found the disk by data/by-lun.
    assert status["security"]["type"] == "TrustedLaunch" and status["image_id"] is None
    assert kept.storage_profile.image_reference.id == status["gallery_image_version_id"]
    assert kept.security_profile.security_type == "TrustedLaunch"
    assert kept.hardware_profile.vm_size == NVME_SIZE
    assert kept.storage_profile.disk_controller_type == "NVMe"
    outputs = cloud.store().get(build_id).build.outputs
    assert outputs["data_disk"]["lun_link"] == "/dev/disk/azure/data/by-lun/0"
    # What is left of the build is exactly the gallery version and the kept VM with what it
    # needs; the build VM is gone.
    left = {r.rsplit("/", 1)[-1] for r in leftovers(cloud, build_id)}
    assert f"labimage-{build_id}-build" not in left
    assert f"labimage-{build_id}-relaunch" in left and "jupyter-ooi-kept" not in left

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
            "findmnt -n -o SOURCE,FSTYPE /datadrive && ls /dev/disk/azure/data/by-lun",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert "xfs" in ran.stdout and "0-part1" in ran.stdout.split()
    azure.compute.virtual_machines.begin_delete(group, str(kept.name)).result()


def test_a_rebuild_from_the_seed_manifest_is_the_same_environment(
    cloud: Cloud, builds: dict[str, str]
) -> None:
    """The seed's manifest records what its image holds; an exact rebuild from it gives an
    equal environment; a changed blob refuses the exact rebuild by name, and data "latest"
    rebuilds and lists the blob as changed."""
    rebuilds = ACTIONS["rebuild"].result(timeout=3600)
    digest = rebuilds["manifest"]
    seed = cloud.wait(builds["seed"])
    assert seed["state"] == "succeeded" and seed["manifest"]["sha256"] == digest
    group = cloud.settings.resource_group
    image = cloud.azure().compute.images.get(group, "jupyter-ooi-ubuntu2404")
    assert manifest_digest_from_tags(image.tags) == digest

    code, manifest = cloud.request("GET", f"/api/manifests/{digest}")
    assert code == 200
    assert manifest["base_image"]["exact_version"] == "24.04.202501010"  # 'latest', resolved
    packages = {p["name"].lower(): p for p in manifest["python_packages"]}
    assert packages["numpy"]["version"] and packages["numpy"]["hashes"]
    assert manifest["python"]["installer"] == "uv" and manifest["python"]["python_version"]
    assert any(p["name"] == "bash" for p in manifest["os_packages"])
    [blob] = manifest["data"][0]["blobs"]
    assert blob["name"] == f"AT4212/{OOI_CSV}" and blob["md5"] and blob["etag"]
    assert blob["size"] == len(ooi_csv())
    commit = subprocess.run(
        ["git", "-C", str(cloud.state_dir / "git" / "ooi-notebooks.git"), "rev-parse", "v1.0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert manifest["repositories"][0]["commit"] == commit
    assert [n["name"] for n in manifest["notebooks"]] == ["notebooks/explore.ipynb"]
    assert manifest["notebooks"][0]["outputs_sha256"]
    code, sbom = cloud.request("GET", f"/api/manifests/{digest}/sbom")
    assert code == 200
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(sbom)) is None

    exact = cloud.wait(rebuilds["exact"], timeout_s=1800)
    assert exact["state"] == "succeeded", exact["error"]
    rebuilt = cloud.store().get(rebuilds["exact"]).build.request
    assert rebuilt["vm"]["image"]["version"] == "24.04.202501010"
    assert rebuilt["repositories"][0]["ref"] == commit
    assert exact["rebuild"]["equal"] is True, exact["rebuild"]
    new_digest = exact["manifest"]["sha256"]
    assert new_digest != digest  # another build id and time ...
    code, diff = cloud.request("GET", f"/api/manifests/{digest}/diff/{new_digest}")
    assert code == 200 and diff["equal"] is True, diff  # ... and the same environment

    code, body = rebuilds["refused"]
    assert code == 409, body
    assert f"AT4212/{OOI_CSV}" in body["problems"][0]["message"]
    latest = cloud.wait(rebuilds["latest"], timeout_s=1800)
    assert latest["state"] == "succeeded", latest["error"]
    changed = {(c["kind"], c["name"]) for c in latest["rebuild"]["differences"]}
    assert ("data_blob", f"ooi-data/AT4212/{OOI_CSV}") in changed
    assert {kind for kind, _ in changed} <= {"data_blob", "notebook"}  # nothing else moved
    upload_data(cloud.settings.storage_connection, "ooi-data", {f"AT4212/{OOI_CSV}": ooi_csv()})


def test_rebuild_auto_starts_from_the_seed_image_and_does_not_install_python_again(
    cloud: Cloud, builds: dict[str, str]
) -> None:
    build_id = ACTIONS["auto"].result(timeout=3600)
    status = cloud.wait(build_id, timeout_s=1800)
    assert status["state"] == "succeeded", status["error"]
    [chosen] = [e["message"] for e in status["events"] if e["message"].startswith("building from")]
    assert chosen.startswith("building from image ") and "not installed again" in chosen, chosen
    images = cloud.azure().compute.images
    group = cloud.settings.resource_group
    seed_digest = images.get(group, "jupyter-ooi-ubuntu2404").tags[DIGEST_TAG]
    source = chosen.removeprefix("building from image ").split(":", 1)[0].rsplit("/", 1)[-1]
    assert images.get(group, source).tags[DIGEST_TAG] == seed_digest
    assert images.get(group, "ooi-rebuild-auto").tags[DIGEST_TAG] == seed_digest
    # What the user can check: the data was pulled again, Python was not installed again.
    code, listed = cloud.request("GET", f"/api/builds/{build_id}/logs")
    assert code == 200
    names = {entry["name"] for entry in listed["logs"]}
    assert "build.pull-data-0.log" in names and "build.clone-0.log" in names, names
    assert not any("install-python" in name for name in names), names


def rebuild_ids() -> list[str]:
    """The rebuilds rebuild_seed and rebuild_auto started, if they got that far."""
    found = []
    future = ACTIONS.get("rebuild")
    if future is not None and future.exception(timeout=3600) is None:
        found += [future.result()["exact"], future.result()["latest"]]
    future = ACTIONS.get("auto")
    if future is not None and future.exception(timeout=3600) is None:
        found.append(future.result())
    return found


def test_no_sandbox_is_left_on_the_host(cloud: Cloud, builds: dict[str, str]) -> None:
    for build_id in [*builds.values(), *rebuild_ids()]:
        cloud.wait(build_id)
    assert not any((cloud.state_dir / "vms").glob("*/run.json"))
    tag = Path(cloud.state_dir).name
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert str(cloud.state_dir) not in loops, loops
    assert tag not in namespaces
