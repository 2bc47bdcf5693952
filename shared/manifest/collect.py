"""The hook after verify: ask the build VM what it holds, put it together with what the build
recorded (blob digests, notebook outputs) and store the manifest and its SBOM.

For a rebuild, the new manifest is compared with the one it was made from and the differences
go on the build record (the first MAX_RECORDED, with counts of all; the full list is the diff
route's answer).
"""

from __future__ import annotations

import hashlib
from typing import Any

from shared.artifacts import get_json
from shared.azure import vms
from shared.azure.naming import BuildNames
from shared.errors import PermanentError
from shared.manifest.compare import diff, summary
from shared.manifest.document import SCHEMA, GuestFacts, environment
from shared.manifest.sbom import sbom_json
from shared.manifest.store import load_manifest, store_manifest
from shared.remote import render
from shared.remote.reports import BadGuestReport, parse_guest_json
from shared.ssh.runner import SshRunner
from shared.state.record import Build, utcnow
from shared.steps.base import StepContext
from shared.steps.guest_jobs import last_lines
from shared.version import LABIMAGE_VERSION

COLLECT_TIMEOUT_S = 300
MAX_RECORDED = 50


async def record_manifest(ctx: StepContext, runner: SshRunner, build: Build) -> Build:
    """The build with outputs.manifest (its digest) and, for a rebuild, outputs.rebuild."""
    if (build.outputs.get("manifest") or {}).get("sha256"):
        return build
    facts = await _guest_facts(ctx, runner)
    manifest = assemble(ctx, build, facts)
    digest = store_manifest(
        ctx.settings, ctx.azure.credential, manifest, sbom_json(manifest).encode()
    )
    build = build.with_outputs(manifest={"sha256": digest})
    rebuild = ctx.request.reproduce
    if rebuild is not None:
        old = load_manifest(ctx.settings, ctx.azure.credential, rebuild.from_manifest)
        changes = diff(environment(old), environment(manifest))
        build = build.with_outputs(
            rebuild={
                "from_manifest": rebuild.from_manifest,
                "data": rebuild.data,
                "equal": not changes,
                "counts": summary(changes),
                "differences": changes[:MAX_RECORDED],
            }
        )
    return build


async def _guest_facts(ctx: StepContext, runner: SshRunner) -> GuestFacts:
    destinations = [repo.destination for repo in ctx.request.repositories or []]
    result = await render.run_now(runner, render.collect_guest(destinations), COLLECT_TIMEOUT_S)
    lines = result.stdout.strip().splitlines()
    try:
        return parse_guest_json(GuestFacts, lines[-1] if lines else "", "guest facts")
    except BadGuestReport as exc:
        raise PermanentError(
            f"the VM's package report cannot be used: {exc} ({last_lines(result.stderr)})"
        ) from None


def assemble(ctx: StepContext, build: Build, facts: GuestFacts) -> dict[str, Any]:
    """The manifest document (see docs/manifests.md for its fields)."""
    request = ctx.request
    vm_name = BuildNames(build.id).vm("build").vm
    reference = vms.image_reference(ctx.azure, vm_name) or {}
    conda = facts.conda_explicit
    return {
        "schema": SCHEMA,
        "build": {"id": build.id, "vm": vm_name},
        "collected_at": utcnow().isoformat(),
        "request": build.request,
        "labimage_version": LABIMAGE_VERSION,
        "base_image": {
            "publisher": reference.get("publisher") or request.vm.image.publisher,
            "offer": reference.get("offer") or request.vm.image.offer,
            "sku": reference.get("sku") or request.vm.image.sku,
            "exact_version": reference.get("exact_version"),
        },
        "vm_size": request.vm.size,
        "python": {
            "installer": facts.installer or request.python.installer,
            "installer_version": facts.installer_version,
            "python_version": facts.python_version,
        },
        "python_packages": [p.model_dump() for p in facts.packages],
        "conda_explicit": conda,
        "conda_explicit_sha256": hashlib.sha256(conda.encode()).hexdigest() if conda else None,
        "os_id": facts.os_id,
        "os_packages": [p.model_dump() for p in facts.os_packages],
        "data": _data(ctx, build),
        "repositories": [
            {
                "url": repo.url,
                "ref": repo.ref,
                "destination": repo.destination,
                "commit": facts.commits.get(repo.destination),
            }
            for repo in request.repositories or []
        ],
        "notebooks": [
            {"name": nb.get("name"), "outputs_sha256": nb.get("outputs_sha256")}
            for nb in (build.outputs.get("verification") or {}).get("notebooks", [])
        ],
    }


def _data(ctx: StepContext, build: Build) -> list[dict[str, Any]]:
    """Every pulled blob with its size, MD5, ETag and sha256, from install's data manifests."""
    sources = []
    install = build.outputs.get("install") or {}
    for index, source in enumerate(ctx.request.data or []):
        summary_ = install.get(f"data-{index}") or {}
        stored = (summary_.get("manifest") or {}).get("blob")
        files = get_json(ctx.settings, ctx.azure.credential, stored)["files"] if stored else []
        sources.append(
            {
                "container": source.container,
                "destination": source.destination,
                "blobs": [
                    {
                        "name": f["blob"],
                        "size": f["size"],
                        "md5": f.get("md5"),
                        "etag": f.get("etag"),
                        "sha256": f["sha256"],
                    }
                    for f in sorted(files, key=lambda f: f["blob"])
                ],
            }
        )
    return sources
