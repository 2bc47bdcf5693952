"""The chaos tally counts as leaked only what a build should not have left."""

from __future__ import annotations

from localcloud.chaos.run import products

IMAGE = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/images/Jupyter-A"
VERSION = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/galleries/g/images/d/versions/1.0.0"


def test_a_succeeded_builds_image_and_gallery_version_are_its_product_not_a_leak() -> None:
    final = {"state": "succeeded", "image_id": IMAGE, "gallery_image_version_id": VERSION}
    assert products(final) == {IMAGE.lower(), VERSION.lower()}


def test_a_failed_build_has_no_product_so_its_image_counts_as_leaked() -> None:
    assert products({"state": "failed", "image_id": IMAGE}) == set()
    assert products(None) == set()
