"""Whose image a build may take over: one made by a build of the same owner, or any
labimage-made one when an administrator (or key holder) submitted the build.

Taking over is replacing a managed image (`image.replace`) or publishing a version into an
existing gallery image definition. The image names the build that made it (`labimage-build`),
the definition the build that created it (`labimage-created-by`); that build's record says
whose it is. A refusal never names the other owner: a user must not learn whose it is.
The build records are opened (`records`) only when there is an earlier build to look up.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.azure import images
from shared.azure.clients import AzureClients
from shared.models.problems import Problem
from shared.models.request import BuildRequest
from shared.state.store import BuildNotFound, BuildStore

Records = Callable[[], BuildStore]


def made_for(store: BuildStore, build_id: str, owner: str) -> bool:
    """Whether build `build_id` is recorded and was made for `owner` (the request's owner)."""
    try:
        made_by = store.get(build_id).build
    except BuildNotFound:  # its record is gone: nobody can say it was this owner's
        return False
    return bool(owner) and made_by.owner.lower() == owner.lower()


def image_refusal(name: str) -> str:
    """What a build that may not replace image `name` is told (never whose it is)."""
    return (
        f"image {name} belongs to another owner: only its owner or an administrator may "
        "replace it; choose another image.name"
    )


def image_problem(
    records: Records, azure: AzureClients, request: BuildRequest, admin: bool
) -> Problem | None:
    """Why a build of `request` may not replace the managed image it names; None when it
    may (or does not replace one another labimage build made)."""
    name = request.image.name
    if admin or not request.image.replace:
        return None
    exists, made_by = images.image_build_tag(azure, name)
    if not exists or not made_by or made_for(records(), made_by, request.owner):
        return None
    return Problem(field="image.name", message=image_refusal(name))


def definition_problem(
    records: Records, azure: AzureClients, request: BuildRequest, admin: bool
) -> Problem | None:
    """Why a build of `request` may not publish into the gallery image definition it names;
    None when it may (or the definition is new, or not made by a labimage build)."""
    gallery = request.image.gallery
    if admin or gallery is None:
        return None
    exists, created_by = images.gallery_definition_creator(
        azure, gallery.gallery_name, gallery.definition
    )
    if not exists or not created_by or made_for(records(), created_by, request.owner):
        return None
    return Problem(
        field="image.gallery.definition",
        message=f"gallery image definition {gallery.gallery_name}/{gallery.definition} belongs "
        "to another owner: only its owner or an administrator may publish into it; choose "
        "another image.gallery.definition",
    )


def target_problems(
    records: Records, azure: AzureClients, request: BuildRequest, admin: bool
) -> list[Problem]:
    """Every target of `request` that another owner's build made and it would take over."""
    found = (
        image_problem(records, azure, request, admin),
        definition_problem(records, azure, request, admin),
    )
    return [p for p in found if p is not None]
