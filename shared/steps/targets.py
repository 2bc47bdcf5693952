"""The image names a build will write: checked before anything is created, so a build never
takes over (or later deletes) an image another build made."""

from __future__ import annotations

from shared.azure import images
from shared.errors import PermanentError
from shared.steps.base import StepContext


def check_image_targets_free(ctx: StepContext) -> None:
    """PermanentError when the managed image or gallery version already exists and is not
    this build's (a re-run with an unchanged name, or another team's image)."""
    target = ctx.request.image
    exists, owner = images.image_build_tag(ctx.azure, target.name)
    if exists and owner != ctx.build.id:
        made_by = f"build {owner}" if owner else "someone outside labimage"
        raise PermanentError(
            f"image {target.name} already exists (made by {made_by}); choose another image.name "
            "or delete that image first"
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
