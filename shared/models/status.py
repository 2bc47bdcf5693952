"""What the API answers about builds: the status of one build, a page of builds, an acceptance."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

BuildState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
StageState = Literal["pending", "running", "succeeded", "failed", "skipped", "cancelled"]
NotebookStatus = Literal["passed", "failed", "timed_out", "skipped"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageRecord(_Model):
    """One stage of the pipeline (provision, mount, install, verify, capture, relaunch, cleanup)."""

    name: str = Field(description="Stage name.", examples=["install"])
    state: StageState = Field(description="Where the stage stands.")
    started_at: datetime | None = Field(None, description="When the stage first started (UTC).")
    finished_at: datetime | None = Field(None, description="When the stage finished (UTC).")
    attempts: int = Field(0, ge=0, description="How many times the stage has run.")
    last_error: str | None = Field(None, description="The last error the stage met, if any.")


class BuildEvent(_Model):
    """Something that happened, in the order it happened."""

    at: datetime = Field(description="When (UTC).")
    stage: str | None = Field(None, description="The stage it belongs to, if any.")
    message: str = Field(description="What happened, in a sentence.")


class ResourceRef(_Model):
    """An Azure resource the build created."""

    type: str = Field(description="Resource type.", examples=["Microsoft.Compute/virtualMachines"])
    id: str = Field(description="Azure resource id.")


class NotebookResult(_Model):
    """The outcome of one notebook run."""

    name: str = Field(description="Notebook path on the VM.")
    status: NotebookStatus = Field(description="How the run ended.")
    duration_s: float | None = Field(None, ge=0, description="Run time in seconds.")
    error: str | None = Field(None, description="The failing cell's error, shortened.")


class VerificationReport(_Model):
    """One run of the check, on the build VM or on the VM relaunched from the image."""

    vm: Literal["build", "relaunch"] = Field(description="Which VM was checked.")
    jupyter_ok: bool = Field(description="Jupyter answered through the SSH tunnel with its token.")
    notebooks: list[NotebookResult] = Field(default_factory=list, description="Per notebook.")


class Connection(_Model):
    """How to reach a VM kept running (no secrets: the key stays with the controller's owner)."""

    vm_name: str | None = Field(None, description="The kept VM's name in the build group.")
    address: str | None = Field(None, description="Its public IP address.")
    key: str | None = Field(None, description="Where to get the SSH private key for -i.")
    known_hosts_line: str | None = Field(
        None,
        description="The VM's pinned host key as a known_hosts line: save it in "
        "known_hosts_file so the first connection is verified, not trusted.",
    )
    known_hosts_file: str | None = Field(
        None, description="The known_hosts file the commands below read (StrictHostKeyChecking)."
    )
    ssh_command: str = Field(description="SSH command to log in.")
    tunnel_command: str = Field(description="SSH command forwarding Jupyter to localhost.")
    start_jupyter: str | None = Field(
        None, description="Command that starts Jupyter on the VM for the tunnel to reach."
    )
    jupyter_url: str = Field(description="Jupyter's address once the tunnel runs.")


class SecurityChoice(_Model):
    """The security type the build's VMs were created with."""

    type: Literal["TrustedLaunch", "Standard"] = Field(description="Azure's securityType.")
    reason: str = Field(description="Why this one: asked for, or the default and its reason.")


class CostEstimate(_Model):
    """An estimate from the shipped price table (approximate list prices, dated)."""

    state: Literal["estimated", "unknown"] = Field(
        description="'unknown' when the VM size is not in the price table (never shown as zero)."
    )
    amount: float | None = Field(None, description="Estimated cost so far; absent if unknown.")
    currency: str = Field(description="Currency of the price table.", examples=["USD"])
    vm_size: str = Field(description="The VM size priced.")
    vm_hourly: float | None = Field(None, description="The size's hourly list price, if known.")
    disk_hourly: float = Field(description="Premium SSD OS and data disks, per hour.")
    hours: float = Field(description="Hours counted.")
    covers: str = Field(description="What the estimate includes.")
    prices_as_of: str = Field(description="The month the price table was written down.")
    note: str | None = Field(None, description="Why the estimate is unknown, if it is.")


class ManifestLink(_Model):
    """Where the build's manifest (what its image holds) and SBOM are read."""

    sha256: str = Field(description="The manifest's sha256; the image carries it as a tag.")
    url: str = Field(description="GET this path for the manifest.", examples=["/api/manifests/…"])
    sbom_url: str = Field(description="GET this path for the CycloneDX SBOM.")


class ManifestChange(_Model):
    """One difference between two manifests."""

    kind: str = Field(
        description="python_package, os_package, data_blob, repository, notebook, base_image, "
        "vm_size, python, labimage_version or conda_explicit_sha256."
    )
    name: str = Field(description="What changed: a package, a blob (container/name), a URL.")
    change: str = Field(
        description="added, removed, upgraded, downgraded, changed, moved, hashes changed, "
        "outputs changed."
    )
    before: Any = Field(None, description="The old value (version, commit, blob digests).")
    after: Any = Field(None, description="The new value.")


class RebuildReport(_Model):
    """A rebuild from a manifest: what differs from the manifest it repeats."""

    from_manifest: str = Field(description="sha256 of the manifest this build repeats.")
    data: Literal["exact", "latest"] = Field(description="How its blobs were taken.")
    equal: bool = Field(description="True when the environments are the same.")
    counts: dict[str, int] = Field(default_factory=dict, description="Changes per kind.")
    differences: list[ManifestChange] = Field(
        default_factory=list,
        description="The first 50 differences; GET /api/manifests/{a}/diff/{b} lists all.",
    )


class ManifestDiff(_Model):
    """GET /api/manifests/{a}/diff/{b}: what changed from a to b (ids and times left out)."""

    a: str = Field(description="sha256 of the older manifest.")
    b: str = Field(description="sha256 of the newer manifest.")
    equal: bool = Field(description="True when the two environments are the same.")
    counts: dict[str, int] = Field(default_factory=dict, description="Changes per kind.")
    changes: list[ManifestChange] = Field(default_factory=list, description="Every change.")


class BuildStatus(_Model):
    """GET /api/builds/{id}: everything known about one build."""

    id: str = Field(description="Build id.")
    name: str = Field(description="The request's build name.")
    state: BuildState = Field(description="Overall state.")
    stage: str | None = Field(None, description="The current (or last) stage.")
    created_at: datetime = Field(description="When the request was accepted (UTC).")
    updated_at: datetime = Field(description="Last change (UTC).")
    stages: list[StageRecord] = Field(default_factory=list, description="Every stage so far.")
    events: list[BuildEvent] = Field(default_factory=list, description="What happened.")
    resources: list[ResourceRef] = Field(
        default_factory=list, description="Azure resources created for this build."
    )
    image_id: str | None = Field(
        None,
        description="Resource id of the captured managed image (none for a Trusted Launch "
        "build: Azure makes no managed image from a Trusted Launch VM).",
    )
    gallery_image_version_id: str | None = Field(
        None, description="Resource id of the gallery image version, if one was requested."
    )
    security: SecurityChoice | None = Field(
        None, description="The security type of the build's VMs and why it was chosen."
    )
    verification: list[VerificationReport] = Field(
        default_factory=list, description="Check results, build VM first."
    )
    connection: Connection | None = Field(
        None, description="How to reach the relaunched VM when it is kept running."
    )
    error: str | None = Field(None, description="Why the build failed, if it did.")
    cost: CostEstimate | None = Field(
        None, description="Estimated cost so far, from approximate list prices."
    )
    manifest: ManifestLink | None = Field(
        None, description="What the image holds, once verify has recorded it."
    )
    rebuild: RebuildReport | None = Field(
        None, description="For a rebuild from a manifest: how the new environment differs."
    )


class BuildSummary(_Model):
    """One line of GET /api/builds."""

    id: str = Field(description="Build id.")
    name: str = Field(description="The request's build name.")
    owner: str = Field(description="The request's owner.")
    project: str = Field(description="The request's project.")
    state: BuildState = Field(description="Overall state.")
    stage: str | None = Field(None, description="The current (or last) stage.")
    created_at: datetime = Field(description="When the request was accepted (UTC).")
    updated_at: datetime = Field(description="Last change (UTC).")


class BuildList(_Model):
    """GET /api/builds: one page of builds, newest first."""

    builds: list[BuildSummary] = Field(description="This page's builds.")
    next_page_token: str | None = Field(
        None, description="Pass as page_token for the next page; absent on the last page."
    )


class BuildAccepted(_Model):
    """202 answer to POST /api/builds and POST /api/builds/{id}/cancel."""

    id: str = Field(description="Build id.")
    status_url: str = Field(description="Where to follow the build: GET /api/builds/{id}.")
