"""The provision, capture and relaunch steps' Azure side against the ARM emulator, through the real
azure-mgmt clients: the security type is always sent (so a platform defaulting to Trusted Launch
does not break a managed-image build), a gallery build is Trusted Launch and captured from the VM
into a definition that says so, and relaunch starts from the gallery version.

The guest side (SSH, deprovisioning) is the e2e tests' part: the capture starts here with the
guest already deprovisioned."""

# mypy: disable-error-code="union-attr"

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from azure.mgmt.compute import models as cm
from sshd_server import free_port, running_sshd
from sshd_server import unavailable_reason as sshd_unavailable

from localcloud.arm.memory_runner import MemoryRunner
from localcloud.arm.testing import emulator_in_thread
from shared import invocation_time
from shared.azure import vms
from shared.azure.clients import AzureClients
from shared.azure.naming import BuildNames
from shared.errors import PermanentError
from shared.models import parse_build_request
from shared.settings import Settings
from shared.ssh.errors import SshConnectionError, SshTurnedAway
from shared.ssh.keys import DirectoryKeyStore, generate_keypair
from shared.state.machine import Stage
from shared.state.record import Build
from shared.steps import capture, vm_access
from shared.steps.base import Done, Poll, StepContext
from shared.steps.capture import capture_image
from shared.steps.provision import provision_vm
from shared.steps.relaunch import relaunch_vm

SUB = "00000000-0000-0000-0000-000000000000"
RG = "labimage-test"
LOC = "westeurope"
SEED = Path(__file__).resolve().parents[2] / "examples" / "seed-request.json"
GALLERY = {"gallery_name": "lab_gallery", "definition": "jupyter", "version": "1.0.0"}


@contextmanager
def controller_on_emulator(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    default_security_type: str,
    runner: MemoryRunner | None = None,
) -> Iterator[tuple[Settings, AzureClients]]:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    # These VMs are records without guests: SSH is refused at once, so try it only briefly.
    monkeypatch.setattr(vm_access, "SSH_WAIT_S", 0.5)
    with emulator_in_thread(
        tmp_path / "arm",
        runner or MemoryRunner(),
        retry_after=0,
        default_security_type=default_security_type,
    ) as (running, _):
        for name, value in running.identity_env().items():
            monkeypatch.setenv(name, value)
        settings = Settings(
            storage_connection="UseDevelopmentStorage=true",
            data_storage_connection="UseDevelopmentStorage=true",
            subscription_id=SUB,
            resource_group=RG,
            location=LOC,
            ssh_key_dir=str(tmp_path / "keys"),
            arm_endpoint=running.arm_url,
            arm_ca_bundle=str(running.ca_pem),
        )
        azure = AzureClients(settings)
        azure.resources.resource_groups.create_or_update(RG, {"location": LOC})
        yield settings, azure


def request(**vm: Any) -> dict[str, Any]:
    doc = json.loads(SEED.read_text())
    if vm.pop("gallery", False):
        doc["image"]["gallery"] = GALLERY
    doc["vm"].update(vm)
    parsed = parse_build_request(json.dumps(doc).encode())
    result: dict[str, Any] = parsed.model_dump(mode="json")
    return result


class Steps:
    def __init__(self, settings: Settings, azure: AzureClients, req: dict[str, Any]) -> None:
        self.settings = settings
        self.azure = azure
        self.keys = DirectoryKeyStore(str(settings.ssh_key_dir))
        self.build = Build(id="bsec000001", request=req, owner="alice")
        self.names = BuildNames(self.build.id)

    def context(self) -> StepContext:
        return StepContext(
            settings=self.settings, build=self.build, azure=self.azure, keys=self.keys
        )

    async def provision_until_the_vm_runs(self) -> cm.VirtualMachine:
        outcome = await provision_vm(self.context())
        assert isinstance(outcome, Poll), outcome  # VM creation started
        self.build = outcome.build
        name = self.names.vm("build").vm
        for _ in range(100):
            if vms.vm_state(self.azure, name).running:
                return self.azure.compute.virtual_machines.get(RG, name)
            time.sleep(0.05)
        raise AssertionError("the build VM never ran")

    async def capture(self) -> Done:
        """Capture as the stage would, polling until done; the guest counts as deprovisioned."""
        self.build = self.build.model_copy(update={"stage": Stage.CAPTURE}).with_progress(
            Stage.CAPTURE, deprovision_done=True
        )
        for _ in range(200):
            outcome = await capture_image(self.context())
            self.build = outcome.build
            if isinstance(outcome, Done):
                return outcome
            time.sleep(0.05)
        raise AssertionError(f"capture never finished: {outcome.note}")

    async def start_relaunch(self) -> cm.VirtualMachine:
        self.build = self.build.model_copy(update={"stage": Stage.RELAUNCH})
        outcome = await relaunch_vm(self.context())
        assert isinstance(outcome, Poll), outcome
        return self.azure.compute.virtual_machines.get(RG, self.names.vm("relaunch").vm)


async def test_a_managed_image_build_still_captures_where_azure_defaults_to_trusted_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with controller_on_emulator(tmp_path, monkeypatch, "TrustedLaunch") as (settings, azure):
        steps = Steps(settings, azure, request())
        vm = await steps.provision_until_the_vm_runs()
        assert vm.security_profile.security_type == "Standard"
        assert steps.build.outputs["security"]["type"] == "Standard"
        assert "managed image" in steps.build.outputs["security"]["reason"]

        await steps.capture()
        image = azure.compute.images.get(RG, "jupyter-ooi-ubuntu2404")
        assert image.id == steps.build.outputs["image_id"]
        assert image.hyper_v_generation == "V2"  # read from the VM, not assumed
        relaunched = await steps.start_relaunch()
        assert relaunched.storage_profile.image_reference.id == image.id
        assert relaunched.security_profile.security_type == "Standard"


async def test_a_gallery_build_is_trusted_launch_and_relaunches_from_the_gallery_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with controller_on_emulator(tmp_path, monkeypatch, "Standard") as (settings, azure):
        steps = Steps(settings, azure, request(size="Standard_D2ads_v6", gallery=True))
        vm = await steps.provision_until_the_vm_runs()
        assert vm.security_profile.security_type == "TrustedLaunch"
        assert vm.storage_profile.disk_controller_type == "NVMe"
        assert steps.build.outputs["security"]["type"] == "TrustedLaunch"

        await steps.capture()
        assert "image_id" not in steps.build.outputs  # Azure makes none from a TL VM
        assert [i.name for i in azure.compute.images.list_by_resource_group(RG)] == []
        definition = azure.compute.gallery_images.get(RG, "lab_gallery", "jupyter")
        assert definition.hyper_v_generation == "V2"
        features = {f.name: f.value for f in definition.features}
        assert features == {"SecurityType": "TrustedLaunch", "DiskControllerTypes": "SCSI, NVMe"}
        version_id = steps.build.outputs["gallery_image_version_id"]
        assert version_id.endswith("/galleries/lab_gallery/images/jupyter/versions/1.0.0")

        relaunched = await steps.start_relaunch()
        assert relaunched.storage_profile.image_reference.id == version_id
        assert relaunched.security_profile.security_type == "TrustedLaunch"
        assert relaunched.storage_profile.disk_controller_type == "NVMe"


async def test_an_existing_definition_that_cannot_take_the_image_fails_the_build_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with controller_on_emulator(tmp_path, monkeypatch, "Standard") as (settings, azure):
        azure.compute.galleries.begin_create_or_update(
            RG, "lab_gallery", cm.Gallery(location=LOC)
        ).result()
        azure.compute.gallery_images.begin_create_or_update(
            RG,
            "lab_gallery",
            "jupyter",
            cm.GalleryImage(
                location=LOC,
                os_type="Linux",
                os_state="Generalized",
                hyper_v_generation="V1",
                identifier=cm.GalleryImageIdentifier(publisher="p", offer="o", sku="s"),
            ),
        ).result()
        steps = Steps(settings, azure, request(gallery=True))
        await steps.provision_until_the_vm_runs()
        with pytest.raises(PermanentError) as caught:
            await steps.capture()
        message = str(caught.value)
        assert "lab_gallery/jupyter cannot take this build's image" in message
        assert "hyperVGeneration is V1" in message and "needs TrustedLaunch" in message


async def test_an_image_deleted_between_capture_and_relaunch_fails_the_relaunch_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An out-of-band deletion (a person, a policy) of the captured image: the build fails with
    a sentence that says which image is gone, instead of crashing until its message is poison."""
    with controller_on_emulator(tmp_path, monkeypatch, "Standard") as (settings, azure):
        steps = Steps(settings, azure, request())
        await steps.provision_until_the_vm_runs()
        await steps.capture()
        azure.compute.images.begin_delete(RG, "jupyter-ooi-ubuntu2404").result()
        with pytest.raises(PermanentError, match=r"jupyter-ooi-ubuntu2404.*cannot be found"):
            await steps.start_relaunch()


async def test_an_image_deleted_once_relaunch_needs_it_no_more_still_fails_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Azure lets an image go once no VM is being provisioned from it, so a deletion during or
    after relaunch goes through; the build must not then say it succeeded with no image."""
    with controller_on_emulator(tmp_path, monkeypatch, "Standard") as (settings, azure):
        req = request()
        req["relaunch"] = {"verify": False, "keep_running": False}  # relaunch ends at once
        steps = Steps(settings, azure, req)
        await steps.provision_until_the_vm_runs()
        await steps.capture()
        for _ in range(200):  # capture started the build VM's deletion: let it finish
            if not vms.vm_state(azure, steps.names.vm("build").vm).exists:
                break
            time.sleep(0.05)
        azure.compute.images.begin_delete(RG, "jupyter-ooi-ubuntu2404").result()
        steps.build = steps.build.model_copy(update={"stage": Stage.RELAUNCH})
        with pytest.raises(PermanentError, match=r"image jupyter-ooi-ubuntu2404 was deleted"):
            await relaunch_vm(steps.context())


@pytest.mark.skipif(sshd_unavailable() is not None, reason=str(sshd_unavailable()))
async def test_a_capture_cut_off_after_deprovisioning_began_goes_on_once_the_guest_turns_it_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 8-build chaos run's finding: the host was killed while capture's deprovisioning ran.
    The guest was deprovisioned (admin user and host keys gone) and every retry's login failed,
    a temporary error, until the stage's deadline. Now a capture that recorded deprovisioning
    as started and finds its login turned away, each time, takes it as done and goes on; a
    port that does not answer at all is still only a temporary failure."""
    monkeypatch.setattr(capture, "TURNED_AWAY_GAP_S", 0.1)
    with (
        controller_on_emulator(tmp_path, monkeypatch, "Standard") as (settings, azure),
        running_sshd() as sshd,
    ):
        steps = Steps(settings, azure, request())
        await steps.provision_until_the_vm_runs()
        steps.build = steps.build.model_copy(update={"stage": Stage.CAPTURE}).with_progress(
            Stage.CAPTURE, deprovision_started=True
        )
        # The VM's sshd, where the build's own key is no longer accepted (the user is gone).
        stranger = generate_keypair("not-the-build").private_openssh
        turned_away = replace(sshd.target(), client_private_key=stranger)
        monkeypatch.setattr(vm_access, "_target", lambda *_: turned_away)
        outcome = await capture_image(steps.context())
        assert isinstance(outcome, Poll) and "earlier attempt" in outcome.note, outcome
        assert outcome.build.marker(Stage.CAPTURE, "deprovision_done") is True

        silent = replace(sshd.target(), port=free_port())  # nothing listens there
        monkeypatch.setattr(vm_access, "_target", lambda *_: silent)
        with pytest.raises(SshConnectionError) as failed:
            await capture_image(steps.context())
        assert not isinstance(failed.value, SshTurnedAway)
        assert not steps.build.marker(Stage.CAPTURE, "deprovision_done")


class FailingFirstBoot(MemoryRunner):
    """A VM whose first boot fails after a while, as a guest that never reports ready does."""

    def new_os_disk(self, path: Path, source: Path | None = None) -> None:
        time.sleep(1.5)
        raise RuntimeError("the guest never reported ready")


async def test_a_vm_whose_creation_ended_failed_fails_the_build_naming_azures_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Azure shows a failed VM as `ProvisioningState/failed/<code>` (taskcluster/taskcluster
    #3347: `ProvisioningState/failed/OSProvisioningTimedOut`), not a bare `failed`. A later
    invocation that took it for "not running yet" would wait out the stage's deadline."""
    with controller_on_emulator(tmp_path, monkeypatch, "Standard", FailingFirstBoot()) as (
        settings,
        azure,
    ):
        steps = Steps(settings, azure, request())
        with invocation_time.holding(0.5):  # the invocation that starts it moves on
            outcome = await provision_vm(steps.context())
        assert isinstance(outcome, Poll), outcome  # creation started, not ended
        steps.build = outcome.build
        time.sleep(2.5)
        with pytest.raises(PermanentError, match="provisioning failed") as failed:
            await provision_vm(steps.context())
        assert "InternalExecutionError" in str(failed.value)


async def test_a_size_without_premium_storage_gets_standard_ssd_disks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with controller_on_emulator(tmp_path, monkeypatch, "Standard") as (settings, azure):
        steps = Steps(settings, azure, request(size="Standard_D2_v5"))
        vm = await steps.provision_until_the_vm_runs()
        disks = [vm.storage_profile.os_disk, *vm.storage_profile.data_disks]
        assert [d.managed_disk.storage_account_type for d in disks] == ["StandardSSD_LRS"] * 2
        premium = Steps(settings, azure, request(size="Standard_D2s_v5"))
        premium.build = premium.build.model_copy(update={"id": "bsec000002"})
        premium.names = BuildNames("bsec000002")
        vm = await premium.provision_until_the_vm_runs()
        assert vm.storage_profile.os_disk.managed_disk.storage_account_type == "Premium_LRS"
