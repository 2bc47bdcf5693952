"""Images made by builds, listed, shown and deleted through the API, and `image.replace`, with the
controller's steps and the real azure-mgmt clients against the ARM emulator (VMs in memory),
build records in Azurite."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient

from localcloud.arm.memory_runner import MemoryRunner
from localcloud.arm.testing import emulator_in_thread
from shared.api import builds as builds_api
from shared.api import images as images_api
from shared.api.caller import Caller, signed_in_caller
from shared.azure.naming import BUILD_TAG, BuildNames
from shared.errors import PermanentError
from shared.models import parse_build_request
from shared.runtime import Runtime
from shared.settings import Settings
from shared.ssh.keys import DirectoryKeyStore
from shared.state.machine import Stage
from shared.state.record import Build, BuildState
from shared.steps import vm_access
from shared.steps.base import Done, Poll, StepContext
from shared.steps.capture import capture_image
from shared.steps.cleanup import clean_up
from shared.steps.provision import provision_vm
from shared.steps.replace_image import swap_image
from shared.steps.vm_access import bring_up_vm
from tests.principals import ADMIN, ALICE, BOB, object_id_of

SUB = "00000000-0000-0000-0000-000000000000"
RG = "labimage-test"
LOC = "westeurope"
SEED = Path(__file__).resolve().parents[2] / "examples" / "seed-request.json"
ALICE_NAME = "alice@example.org"


class HeldFirstBoot(MemoryRunner):
    """Holds a VM's first boot while `hold` is set, so it stays in provisioningState Creating."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = threading.Event()
        self.release = threading.Event()

    def new_os_disk(self, path: Path, source: Path | None = None) -> None:
        if self.hold.is_set():
            self.release.wait(30)
        super().new_os_disk(path, source)


@pytest.fixture
def runner() -> Iterator[HeldFirstBoot]:
    held = HeldFirstBoot()
    yield held
    held.release.set()


@pytest.fixture
def rt(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    azurite_connection_string: str,
    runner: HeldFirstBoot,
) -> Iterator[Runtime]:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    # These VMs are records without guests: SSH is refused at once, so try it only briefly.
    monkeypatch.setattr(vm_access, "SSH_WAIT_S", 0.5)
    with emulator_in_thread(tmp_path / "arm", runner, retry_after=0) as (running, _):
        for name, value in running.identity_env().items():
            monkeypatch.setenv(name, value)
        settings = Settings(
            storage_connection=azurite_connection_string,
            data_storage_connection=azurite_connection_string,
            subscription_id=SUB,
            resource_group=RG,
            location=LOC,
            ssh_key_dir=str(tmp_path / "keys"),
            arm_endpoint=running.arm_url,
            arm_ca_bundle=str(running.ca_pem),
            builds_table="images" + secrets.token_hex(4),
        )
        runtime = Runtime(settings)
        runtime.azure.resources.resource_groups.create_or_update(RG, {"location": LOC})
        yield runtime
        TableServiceClient.from_connection_string(azurite_connection_string).delete_table(
            settings.builds_table
        )


def caller(headers: dict[str, str]) -> Caller:
    found = signed_in_caller(headers, True)
    assert found is not None
    return found


def request_doc(image: dict[str, Any], owner: str = ALICE_NAME, **more: Any) -> dict[str, Any]:
    doc = json.loads(SEED.read_text())
    doc.update(image=image, owner=owner, **more)
    return doc


def request(image: dict[str, Any], owner: str = ALICE_NAME, **more: Any) -> dict[str, Any]:
    doc = request_doc(image, owner, **more)
    return parse_build_request(json.dumps(doc).encode()).model_dump(mode="json")


class Steps:
    """One build driven through provision and capture (the guest counts as deprovisioned):
    a signed-in owner's own, or (`by_admin`) one an administrator submitted for `owner`."""

    def __init__(
        self,
        rt: Runtime,
        build_id: str,
        image: dict[str, Any],
        owner: str = ALICE_NAME,
        by_admin: bool = False,
        **more: Any,
    ) -> None:
        self.rt = rt
        self.keys = DirectoryKeyStore(str(rt.settings.ssh_key_dir))
        self.build = Build(
            id=build_id,
            request=request(image, owner, **more),
            owner=owner,
            owner_id="" if by_admin else object_id_of(owner),
            submitted_as_admin=by_admin,
        )
        rt.store.create(self.build)

    def context(self) -> StepContext:
        return StepContext(self.rt.settings, self.build, self.rt.azure, self.keys)

    async def until_done(self, step: Any, stage: Stage) -> Done:
        self.build = self.build.model_copy(update={"stage": stage})
        for _ in range(400):
            outcome = await step(self.context())
            self.build = outcome.build
            if isinstance(outcome, Done):
                return outcome
            await asyncio.sleep(0.03)
        raise AssertionError(f"{stage} never finished: {outcome.note}")

    async def provision(self) -> None:
        outcome = await provision_vm(self.context())
        assert isinstance(outcome, Poll), outcome  # VM creation started
        self.build = outcome.build
        vm = BuildNames(self.build.id).vm("build").vm
        for _ in range(200):
            found = self.rt.azure.compute.virtual_machines.get(RG, vm)
            if found.provisioning_state == "Succeeded":
                return
            await asyncio.sleep(0.03)
        raise AssertionError("the build VM never ran")

    async def capture(self) -> Done:
        self.build = self.build.with_progress(Stage.CAPTURE, deprovision_done=True)
        return await self.until_done(capture_image, Stage.CAPTURE)

    async def swap(self) -> Build:
        for _ in range(400):
            result = await swap_image(self.context(), self.build)
            if isinstance(result, Build):
                self.build = result
                return result
            self.build = result.build
            await asyncio.sleep(0.03)
        raise AssertionError("the swap never finished")


def not_found(name: str) -> dict[str, Any]:
    """The answer for an image that does not exist, with `name` in place of its name."""
    return {
        "error": "not found",
        "problems": [{"field": "name", "message": f"there is no image {name!r}"}],
    }


def image_build(rt: Runtime, name: str) -> str | None:
    return (rt.azure.compute.images.get(RG, name).tags or {}).get(BUILD_TAG)


async def test_images_are_listed_shown_and_deleted_by_their_owner_unless_a_vm_uses_them(
    rt: Runtime,
) -> None:
    first = Steps(rt, "bimg000001", {"name": "jupyter-a"})
    await first.provision()
    await first.capture()

    listed = images_api.list_images(rt, caller(ALICE))
    assert listed.status == 200
    [image] = listed.body["images"]
    assert image["name"] == "jupyter-a" and image["kind"] == "managed-image"
    assert (image["build_id"], image["owner"]) == ("bimg000001", ALICE_NAME)
    assert image["request_name"] == "ooi-jupyter"
    assert image["size_gb"] == 30 + 256  # OS disk and the 256 GB data disk
    assert image["manifest_digest"] is None
    assert images_api.list_images(rt, caller(BOB)).body["images"] == []
    assert len(images_api.list_images(rt, caller(ADMIN)).body["images"]) == 1

    # To another user alice's image answers as if it did not exist: nothing says whose it is.
    for ask in (images_api.get_image, images_api.delete_image):
        refused = ask(rt, "jupyter-a", caller(BOB))
        assert (refused.status, refused.body) == (404, not_found("jupyter-a")), refused
    assert images_api.get_image(rt, "jupyter-a", caller(ADMIN)).status == 200
    bad = images_api.get_image(rt, "jupyter a;rm", caller(ALICE))
    assert bad.status == 400 and bad.body["problems"][0]["field"] == "name"
    absent = images_api.get_image(rt, "no-such-image", caller(ALICE))
    assert (absent.status, absent.body) == (404, not_found("no-such-image"))

    # A VM started from the image (as relaunch does; a workstation later) holds it.
    started = await bring_up_vm(first.context(), "relaunch", image["id"])
    assert isinstance(started, Poll)
    user_vm = BuildNames("bimg000001").vm("relaunch").vm
    used = images_api.delete_image(rt, "jupyter-a", caller(ALICE))
    assert used.status == 409
    assert f"VM {user_vm} (build bimg000001)" in used.body["problems"][0]["message"]

    rt.azure.compute.virtual_machines.begin_delete(RG, user_vm).result()
    deleting = images_api.delete_image(rt, "jupyter-a", caller(ALICE))
    assert deleting.status == 202
    for _ in range(200):
        if images_api.get_image(rt, "jupyter-a", caller(ALICE)).status == 404:
            break
        await asyncio.sleep(0.03)
    else:
        raise AssertionError("the image was never deleted")
    assert images_api.list_images(rt, caller(ADMIN)).body["images"] == []


async def test_replace_keeps_the_old_image_when_the_new_build_fails_then_replaces_it(
    rt: Runtime,
) -> None:
    name = "jupyter-team"
    old = Steps(rt, "bold000001", {"name": name})
    await old.provision()
    await old.capture()
    old_id = rt.azure.compute.images.get(RG, name).id

    # Without replace, a second build is refused at provision, naming the way out.
    plain = Steps(rt, "bplain0001", {"name": name})
    with pytest.raises(PermanentError, match=r"set image\.replace to true"):
        await plain.provision()

    failing = Steps(rt, "bfail00001", {"name": name, "replace": True})
    await failing.provision()
    captured = await failing.capture()
    temporary = failing.build.outputs["replace"]["temporary_name"]
    assert temporary == f"{name}-bfail00001" and temporary in captured.note
    assert image_build(rt, temporary) == "bfail00001"
    # ... it fails (at relaunch, say): cleanup removes the new image, the old one is untouched.
    failing.build = failing.build.model_copy(update={"outcome": BuildState.FAILED})
    await failing.until_done(clean_up, Stage.CLEANUP)
    assert rt.azure.compute.images.get(RG, name).id == old_id
    assert image_build(rt, name) == "bold000001"
    with pytest.raises(ResourceNotFoundError):
        rt.azure.compute.images.get(RG, temporary)

    replacing = Steps(rt, "bnew000001", {"name": name, "replace": True})
    await replacing.provision()
    await replacing.capture()
    assert image_build(rt, name) == "bold000001"  # still the old one until verified
    swapped = await replacing.swap()
    assert image_build(rt, name) == "bnew000001"
    decision = swapped.outputs["replace"]
    assert decision["outcome"] == "replaced" and decision["old_build"] == "bold000001"
    assert swapped.outputs["image_id"] == rt.azure.compute.images.get(RG, name).id
    with pytest.raises(ResourceNotFoundError):
        rt.azure.compute.images.get(RG, f"{name}-bnew000001")
    assert [i.name for i in rt.azure.compute.images.list_by_resource_group(RG)] == [name]
    # The build's record keeps the named image (cleanup on success leaves images).
    image_ids = [r.id for r in swapped.resources if r.type == "Microsoft.Compute/images"]
    assert image_ids == [swapped.outputs["image_id"]]


async def test_the_swap_waits_while_a_vm_is_still_provisioned_from_the_old_image(
    rt: Runtime, runner: HeldFirstBoot
) -> None:
    name = "jupyter-busy"
    old = Steps(rt, "bbusy00001", {"name": name})
    await old.provision()
    await old.capture()
    replacing = Steps(rt, "bbusy00002", {"name": name, "replace": True})
    await replacing.provision()
    await replacing.capture()

    # Someone starts a VM from the old image (a workstation, another build's relaunch) and
    # Azure refuses to delete an image while a VM is being provisioned from it.
    runner.hold.set()
    old_image_id = rt.azure.compute.images.get(RG, name).id
    vm_name = BuildNames(old.build.id).vm("relaunch").vm

    def start_vm() -> None:  # in its own thread: the VM's creation waits on the held boot
        relaunch = old.context()
        for _ in range(400):  # the IP and NIC first; the VM's creation starts in a later call
            outcome = asyncio.run(bring_up_vm(relaunch, "relaunch", old_image_id))
            relaunch = StepContext(rt.settings, outcome.build, rt.azure, old.keys)
            if outcome.build.marker(outcome.build.stage, "relaunch_vm_create_started"):
                return
            time.sleep(0.03)

    starting = threading.Thread(target=start_vm)
    starting.start()
    for _ in range(400):
        try:
            if rt.azure.compute.virtual_machines.get(RG, vm_name).provisioning_state == "Creating":
                break
        except ResourceNotFoundError:
            pass
        await asyncio.sleep(0.05)
    waiting = await swap_image(replacing.context(), replacing.build)
    assert isinstance(waiting, Poll), waiting
    assert "being provisioned" in waiting.note
    assert image_build(rt, name) == "bbusy00001"  # nothing lost meanwhile

    runner.release.set()
    starting.join()
    replacing.build = waiting.build
    swapped = await replacing.swap()
    assert swapped.outputs["replace"]["outcome"] == "replaced"
    assert image_build(rt, name) == "bbusy00002"


GALLERY = {"gallery_name": "lab_gallery", "definition": "jupyter", "version": "1.0.0"}


async def captured_in_gallery(rt: Runtime, build_id: str, name: str) -> Steps:
    """Build `build_id` provisioned and captured into GALLERY (as Alice)."""
    steps = Steps(rt, build_id, {"name": name, "gallery": GALLERY})
    await steps.provision()
    await steps.capture()
    return steps


async def test_a_gallery_version_is_listed_and_deleted_by_its_three_part_name(
    rt: Runtime,
) -> None:
    await captured_in_gallery(rt, "bgal000001", "jupyter-g")

    [image] = images_api.list_images(rt, caller(ALICE)).body["images"]
    assert (image["name"], image["kind"]) == ("lab_gallery:jupyter:1.0.0", "gallery-version")
    assert image["build_id"] == "bgal000001" and image["size_gb"] == 30 + 256
    assert image["created"]  # the version's publishing date
    shown = images_api.get_image(rt, "lab_gallery:jupyter:1.0.0", caller(ALICE))
    assert shown.status == 200 and shown.body["id"] == image["id"]
    bad = images_api.get_image(rt, "lab_gallery:jupyter:1.0", caller(ALICE))
    assert bad.status == 400 and bad.body["problems"][0]["field"] == "name"

    assert images_api.delete_image(rt, "lab_gallery:jupyter:1.0.0", caller(ALICE)).status == 202
    for _ in range(200):
        if not images_api.list_images(rt, caller(ALICE)).body["images"]:
            break
        await asyncio.sleep(0.03)
    else:
        raise AssertionError("the gallery version was never deleted")
    # The definition outlives builds (no build tag): it stays for the next version.
    assert rt.azure.compute.gallery_images.get(RG, "lab_gallery", "jupyter").name == "jupyter"


def submit(rt: Runtime, who: dict[str, str], image: dict[str, Any], owner: str) -> Any:
    """A build request (without data: this runtime allows no data container) as `who`."""
    doc = request_doc(image, owner)
    del doc["data"]
    return builds_api.submit(rt, json.dumps(doc).encode(), "http://x", caller(who))


async def test_only_the_owner_or_an_administrator_may_replace_an_image(rt: Runtime) -> None:
    name = "jupyter-team-a"
    alice = Steps(rt, "balice0001", {"name": name})
    await alice.provision()
    await alice.capture()

    # Bob may not take alice's image over; he is not told whose it is.
    refused = submit(rt, BOB, {"name": name, "replace": True}, "bob@example.org")
    assert refused.status == 409, refused
    [problem] = refused.body["problems"]
    assert problem["field"] == "image.name"
    assert "belongs to another owner" in problem["message"]
    assert "alice@" not in problem["message"] and "balice0001" not in problem["message"]
    # Alice may replace her own; an administrator anyone's, for any owner.
    assert submit(rt, ALICE, {"name": name, "replace": True}, ALICE_NAME).status == 202
    assert submit(rt, ADMIN, {"name": name, "replace": True}, "bob@example.org").status == 202
    bobs = Steps(rt, "bbob000001", {"name": name, "replace": True}, "bob@example.org")
    with pytest.raises(PermanentError, match="belongs to another owner"):
        await bobs.provision()
    admins = Steps(rt, "badmin0001", {"name": name, "replace": True}, "bob@example.org", True)
    await admins.provision()
    assert image_build(rt, name) == "balice0001"


async def test_an_image_made_for_another_owner_meanwhile_is_not_replaced_at_capture(
    rt: Runtime,
) -> None:
    name = "jupyter-race"
    bobs = Steps(rt, "bbobrace01", {"name": name, "replace": True}, "bob@example.org")
    await bobs.provision()  # no image of that name yet
    alice = Steps(rt, "balicerac1", {"name": name})
    await alice.provision()
    await alice.capture()

    with pytest.raises(PermanentError, match="belongs to another owner"):
        await bobs.capture()
    assert image_build(rt, name) == "balicerac1"
    assert [i.name for i in rt.azure.compute.images.list_by_resource_group(RG)] == [name]


async def test_only_the_owner_or_an_administrator_may_publish_into_a_gallery_definition(
    rt: Runtime,
) -> None:
    gallery = GALLERY
    await captured_in_gallery(rt, "bgalalice1", "jupyter-ga")

    newer = {"name": "jupyter-gb", "gallery": {**gallery, "version": "2.0.0"}}
    refused = submit(rt, BOB, newer, "bob@example.org")
    assert refused.status == 409, refused
    [problem] = refused.body["problems"]
    assert problem["field"] == "image.gallery.definition"
    assert "belongs to another owner" in problem["message"]
    assert "alice@" not in problem["message"] and "bgalalice1" not in problem["message"]
    assert submit(rt, ALICE, newer, ALICE_NAME).status == 202
    assert submit(rt, ADMIN, newer, "bob@example.org").status == 202
    bobs = Steps(rt, "bgalbob001", newer, "bob@example.org")
    with pytest.raises(PermanentError, match="belongs to another owner"):
        await bobs.provision()


async def test_rebuild_auto_starts_only_from_an_image_made_for_the_same_owner(
    rt: Runtime,
) -> None:
    # Builds an administrator submitted record no owner id: only the owner's name tells them apart.
    first = Steps(rt, "brebalice1", {"name": "jupyter-r1"}, by_admin=True)
    await first.provision()
    await first.capture()
    rt.store.replace(
        rt.store.get(first.build.id), first.build.model_copy(update={"state": BuildState.SUCCEEDED})
    )
    image_id = first.build.outputs["image_id"]

    bobs = Steps(rt, "brebbob001", {"name": "jupyter-r2"}, "bob@example.org", True, rebuild="auto")
    await bobs.provision()
    assert bobs.build.outputs["start"]["image_id"] is None
    again = Steps(rt, "brebalice2", {"name": "jupyter-r3"}, by_admin=True, rebuild="auto")
    await again.provision()
    assert again.build.outputs["start"]["image_id"] == image_id
