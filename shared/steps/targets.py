"""The image names a build will write: checked before anything is created, so a build never
takes over (or later deletes) an image another build made."""

from __future__ import annotations

from shared.azure import images
from shared.errors import PermanentError
from shared.steps.base import StepContext
from shared.target_owners import target_problems


def check_image_targets_free(ctx: StepContext) -> None:
    """PermanentError when the managed image or gallery version already exists and is not
    this build's (a re-run with an unchanged name, or another team's image), unless the
    request replaces a managed image another labimage build made for the same owner (for
    any owner when an administrator submitted it). Publishing into a gallery image definition
    another owner's build created is refused the same way."""
    problems = target_problems(ctx.store, ctx.azure, ctx.request, ctx.build.by_admin)
    if problems:
        raise PermanentError("; ".join(p.message for p in problems))
    target = ctx.request.image
    exists, owner = images.image_build_tag(ctx.azure, target.name)
    # image.replace takes over an image another labimage build made, never anyone else's.
    replaceable = target.replace and bool(owner)
    if exists and owner != ctx.build.id and not replaceable:
        made_by = f"build {owner}" if owner else "someone outside labimage"
        hint = ", set image.replace to true" if owner else ""
        raise PermanentError(
            f"image {target.name} already exists (made by {made_by}); choose another "
            f"image.name{hint} or delete that image first"
        )
    gallery = target.gallery
    if gallery is None:
        return
    exists, owner = images.gallery_version_build_tag(
        ctx.azure, gallery.gallery_name, gallery.definition, gallery.version
    )
    if exists and owner != ctx.build.id:
        raise PermanentError(
            f"gallery image version {gallery.gallery_name}/{gallery.definition}/"
            f"{gallery.version} already exists; choose another image.gallery.version"
        )
