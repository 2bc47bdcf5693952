"""A CycloneDX SBOM of the image's Python and OS packages, made with cyclonedx-python-lib."""

from __future__ import annotations

from typing import Any

from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL


def _component(purl: PackageURL, name: str, version: str) -> Component:
    return Component(
        type=ComponentType.LIBRARY,
        name=name,
        version=version,
        purl=purl,
        bom_ref=purl.to_string(),
    )


def sbom_json(manifest: dict[str, Any]) -> str:
    """CycloneDX 1.6 JSON: one component per Python distribution (purl pkg:pypi) and per
    Debian package (pkg:deb/<os id>), under a root component naming the image."""
    bom = Bom()
    made: list[Component] = []
    request = manifest.get("request") or {}
    image_name = (request.get("image") or {}).get("name") or "labimage-image"
    root = Component(
        type=ComponentType.OPERATING_SYSTEM,
        name=str(image_name),
        version=str((manifest.get("base_image") or {}).get("exact_version") or ""),
        bom_ref="image",
    )
    bom.metadata.component = root
    seen: set[str] = set()
    for package in manifest.get("python_packages") or []:
        name, version = str(package["name"]), str(package["version"])
        purl = PackageURL(type="pypi", name=name.lower(), version=version)
        if purl.to_string() not in seen:
            seen.add(purl.to_string())
            made.append(_component(purl, name, version))
    os_id = str(manifest.get("os_id") or "debian")
    for package in manifest.get("os_packages") or []:
        name, version = str(package["name"]), str(package["version"])
        purl = PackageURL(
            type="deb",
            namespace=os_id,
            name=name,
            version=version,
            qualifiers={"arch": str(package.get("arch") or "")} if package.get("arch") else None,
        )
        if purl.to_string() not in seen:
            seen.add(purl.to_string())
            made.append(_component(purl, name, version))
    for component in made:
        bom.components.add(component)
    bom.register_dependency(root, made)  # everything is installed in the image itself
    return JsonV1Dot6(bom).output_as_string(indent=None)
