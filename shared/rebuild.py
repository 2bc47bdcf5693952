"""`"rebuild": "auto"`: start from the image of an earlier good build when its environment is
the same, so a weekly rebuild refreshes data and notebooks without installing Python again.

The environment digest covers what the Python install depends on: the installer (and the
controller's install script itself), the Python version, the packages, the requirements and
environment files, Jupyter's options, the base image, the security type and the data disk's
layout. Capture writes it on the image as a tag; a rebuild reuses an image only when that
recorded digest equals the one of its own request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from shared.azure.boundary import get_or_none
from shared.azure.clients import AzureClients
from shared.azure.lro import provisioning_state
from shared.remote import load_script
from shared.state.record import Build, BuildState
from shared.state.store import BuildStore

DIGEST_TAG = "labimage-env-digest"
DIGEST_VERSION = 1
MAX_CANDIDATES = 5  # the newest earlier builds looked at


def environment_digest(request: Any) -> str:
    """sha256 (hex) of the request's environment, as an image built from it would hold it."""
    python = request.python
    disk = request.data_disk
    environment = {
        "digest_version": DIGEST_VERSION,
        "installer": python.installer,
        "install_script": hashlib.sha256(load_script("install_python.sh").encode()).hexdigest(),
        "python_version": python.version,
        "packages": sorted(python.packages or []),
        "requirements_txt": python.requirements_txt,
        "environment_yml": python.environment_yml,
        "jupyter": python.jupyter.model_dump(mode="json"),
        "base_image": request.vm.image.model_dump(mode="json"),
        "security_type": request.security_choice()[0],
        "data_disk": {
            "lun": disk.lun,
            "mount_point": disk.mount_point,
            "filesystem": disk.filesystem,
            "size_gb": disk.size_gb,
        },
    }
    text = json.dumps(environment, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class EarlierImage:
    """The image an earlier succeeded build made, with the digest recorded on it (None when
    the image is gone or carries none)."""

    build_id: str
    image_id: str
    digest: str | None


@dataclass(frozen=True)
class StartChoice:
    """What the build VM starts from: `image_id` None is the marketplace image."""

    image_id: str | None
    source_build: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": "rebuild" if self.image_id else "full",
            "image_id": self.image_id,
            "source_build": self.source_build,
            "reason": self.reason,
        }


def choose_start(digest: str, earlier: Iterable[EarlierImage]) -> StartChoice:
    """The newest earlier image whose recorded digest equals `digest`; else the marketplace,
    saying why. Never an image whose digest differs or is unknown."""
    seen: list[str] = []
    for candidate in earlier:
        if candidate.digest == digest:
            return StartChoice(
                candidate.image_id,
                candidate.build_id,
                f"the environment of build {candidate.build_id}'s image is the same "
                f"(digest {digest[:12]}): Python is not installed again",
            )
        if candidate.digest is None:
            seen.append(f"{candidate.build_id}: its image is gone or records no digest")
        else:
            seen.append(
                f"{candidate.build_id}: environment differs "
                f"({candidate.digest[:12]} vs {digest[:12]})"
            )
    if not seen:
        return StartChoice(None, None, "no earlier succeeded build of this name has an image")
    return StartChoice(
        None, None, "no earlier image has the same environment (" + "; ".join(seen) + ")"
    )


def earlier_images(
    store: BuildStore, azure: AzureClients, build: Build, limit: int = MAX_CANDIDATES
) -> list[EarlierImage]:
    """Images of the newest earlier succeeded builds with the same request name and owner,
    newest first, each with the digest its image records."""
    builds = sorted(_same_name(store, build), key=lambda b: b.created_at, reverse=True)[:limit]
    return [
        EarlierImage(
            b.id, str(b.outputs["image_id"]), _recorded_digest(azure, b.outputs["image_id"])
        )
        for b in builds
    ]


def _same_name(store: BuildStore, build: Build) -> Iterator[Build]:
    name = build.request.get("name")
    token: str | None = None
    while True:
        # The owner id alone is '' for every build an administrator or the queue submitted:
        # the owner's name keeps another owner's image out.
        page = store.list(
            state=BuildState.SUCCEEDED.value,
            owner=build.owner,
            owner_id=build.owner_id,
            page_token=token,
        )
        for earlier in page.builds:
            if (
                earlier.id != build.id
                and earlier.request.get("name") == name
                and earlier.outputs.get("image_id")
            ):
                yield earlier
        token = page.next_token
        if not token:
            return


def _recorded_digest(azure: AzureClients, image_id: str) -> str | None:
    """The digest tag of a managed image in the controller's resource group, None if gone."""
    group = azure.settings.resource_group
    parts = image_id.strip("/").split("/")
    if len(parts) < 8 or parts[3].lower() != group.lower():
        return None
    name = parts[-1]
    image = get_or_none(f"read image {name}", lambda: azure.compute.images.get(group, name))
    if image is None or provisioning_state(image) != "Succeeded":
        return None
    return (image.tags or {}).get(DIGEST_TAG)
