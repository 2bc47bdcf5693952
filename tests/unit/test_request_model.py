"""The build request: every bad input becomes a problem at the field a person has to change."""

# The table of bad inputs reads best with one case per line, however long.

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared.models import (
    MAX_REQUEST_BYTES,
    BuildRequest,
    Problem,
    RequestInvalid,
    RequestTooLarge,
    parse_build_request,
)

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed-request.json"
DELETE = object()


def seed() -> dict[str, Any]:
    return json.loads(SEED.read_text())


def _tokens(path: str) -> list[str | int]:
    return [
        int(t[1:-1]) if t.startswith("[") else t for t in re.findall(r"\[\d+\]|[^.\[\]]+", path)
    ]


def mutate(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of doc with the value at path ('data[0].destination') replaced or deleted."""
    doc = copy.deepcopy(doc)
    *parents, last = _tokens(path)
    node: Any = doc
    for token in parents:
        node = node[token]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return doc


def problems_of(doc: Any) -> list[Problem]:
    with pytest.raises(RequestInvalid) as caught:
        parse_build_request(json.dumps(doc).encode())
    return caught.value.problems


GALLERY = {"gallery_name": "lab_gallery", "definition": "jupyter", "version": "1.0.0"}

# (changes as (path, value) pairs, the field the problem must name, a fragment of its message)
BAD_INPUTS = [
    # unknown fields, top level and nested
    ([("colour", "blue")], "colour", "allowed fields here are: name, owner"),
    ([("vm.sise", "Standard_D2s_v5")], "vm.sise", "did you mean 'size'"),
    ([("data[0].folder", "x")], "data[0].folder", "container, prefix, blobs, destination"),
    ([("image.gallery", {**GALLERY, "region": "x"})], "image.gallery.region", "unknown field"),
    ([("autostop.timezone", "UTC")], "autostop.timezone", "did you mean 'time_zone'"),
    # Azure naming rules
    ([("name", "Ooi Jupyter")], "name", "lowercase"),
    ([("name", "x" * 41)], "name", "at most 40"),
    ([("name", "")], "name", "must not be empty"),
    ([("vm.size", "D2s_v5")], "vm.size", "Standard_D2s_v5"),
    ([("vm.size", "Standard_D2s v5")], "vm.size", "not an Azure VM size"),
    ([("vm.security_type", "trustedlaunch")], "vm.security_type", "must be one of 'TrustedLaunch', 'Standard'"),
    ([("vm.security_type", "TrustedLaunch")], "vm.security_type", "cannot capture a managed image from a Trusted Launch VM"),
    ([("vm.admin_username", "root")], "vm.admin_username", "reserved"),
    ([("vm.admin_username", "administrator")], "vm.admin_username", "reserved"),
    ([("vm.admin_username", "Alice")], "vm.admin_username", "lowercase"),
    ([("vm.admin_username", "9lives")], "vm.admin_username", "lowercase letter"),
    ([("vm.admin_username", "a" * 33)], "vm.admin_username", "at most 32"),
    ([("vm.admin_username", "alice;id")], "vm.admin_username", "lowercase"),
    ([("data[0].container", "OOI-data")], "data[0].container", "lowercase"),
    ([("data[0].container", "oo")], "data[0].container", "at least 3"),
    ([("data[0].container", "ooi--data")], "data[0].container", "two hyphens"),
    ([("data[0].container", "-ooi-data")], "data[0].container", "start and end"),
    ([("data[0].container", "a" * 64)], "data[0].container", "at most 63"),
    ([("image.name", "-jupyter")], "image.name", "start with a letter"),
    ([("image.name", "jupyter-")], "image.name", "end with"),
    ([("image.name", "jupyter image")], "image.name", "letters, digits"),
    ([("image.name", "j" * 81)], "image.name", "at most 80"),
    ([("image.gallery", {**GALLERY, "gallery_name": "lab-gallery"})], "image.gallery.gallery_name", "no hyphens"),
    ([("image.gallery", {**GALLERY, "version": "1.0"})], "image.gallery.version", "three whole numbers"),
    ([("image.gallery", {**GALLERY, "definition": "jupyter_"})], "image.gallery.definition", "start and end"),
    ([("tags", {"a/b": "x"})], "tags", "does not allow"),
    ([("tags", {"cost<center": "x"})], "tags", "does not allow"),
    ([("tags", {"labimage-build": "x"})], "tags", "controller's"),
    ([("tags", {"Owner": "bob"})], "tags", "top-level 'owner' field"),
    ([("tags", {"azure-team": "x"})], "tags", "reserves"),
    ([("tags", {"env": "v" * 257})], "tags", "longer than 256"),
    ([("tags", {"n" * 513: "v"})], "tags", "longer than 512"),
    ([("tags", {"env": "a", "ENV": "b"})], "tags", "only in case"),
    ([("tags", {f"t{i}": "v" for i in range(41)})], "tags", "at most 40"),
    ([("tags", {"env": 1})], "tags.env", "must be a string"),
    ([("tags", {"a b": 1})], 'tags["a b"]', "must be a string"),
    # package strings that are not plain PEP 508 requirements
    ([("python.packages", ["numpy", "numpy; rm -rf /"])], "python.packages[1]", "does not use"),
    ([("python.packages", ["numpy && curl x"])], "python.packages[0]", "does not use"),
    ([("python.packages", ["git+https://example.org/x.git"])], "python.packages[0]", "URL"),
    ([("python.packages", ["--index-url x"])], "python.packages[0]", "pip option"),
    ([("python.packages", ["-e ."])], "python.packages[0]", "pip option"),
    ([("python.packages", ["numpy @ https://example.org/n.whl"])], "python.packages[0]", "direct reference"),
    ([("python.packages", ["numpy\n"])], "python.packages[0]", "spaces at the start or end"),
    ([("python.packages", [" numpy"])], "python.packages[0]", "spaces at the start or end"),
    ([("python.packages", ["numpy\tscipy"])], "python.packages[0]", "does not use"),
    ([("python.packages", ["numpy$(id)"])], "python.packages[0]", "does not use"),
    ([("python.packages", ["numpy`id`"])], "python.packages[0]", "does not use"),
    ([("python.packages", ["numpy|cat"])], "python.packages[0]", "does not use"),
    ([("python.packages", ["numpy scipy"])], "python.packages[0]", "not a valid package requirement"),
    ([("python.packages", ["numpy>=>1"])], "python.packages[0]", "not a valid package requirement"),
    ([("python.packages", [""])], "python.packages[0]", "must not be empty"),
    ([("python.packages", ["numpy", "NumPy>=2"])], "python.packages", "more than once"),
    ([("python.packages", "numpy")], "python.packages", "must be a list"),
    ([("python.packages", []), ("python.requirements_txt", "-e git+https://x/y.git#egg=y")], "python.requirements_txt", "line 1"),
    ([("python.packages", []), ("python.requirements_txt", "numpy\n-r other.txt")], "python.requirements_txt", "line 2"),
    ([("python.packages", []), ("python.requirements_txt", "numpy\n--index-url https://x/simple")], "python.requirements_txt", "pip option"),
    ([("python.packages", []), ("python.requirements_txt", "numpy; curl x | sh")], "python.requirements_txt", "line 1"),
    ([("python.requirements_txt", "scipy")], "python.requirements_txt", "one way only"),
    ([("python.packages", []), ("python.environment_yml", "dependencies: [numpy]")], "python.environment_yml", "needs installer"),
    ([("python.packages", []), ("python.installer", "miniforge"), ("python.environment_yml", "channels: [https://evil.example/c]\ndependencies: [numpy]")], "python.environment_yml", "channel URLs"),
    ([("python.packages", []), ("python.installer", "miniforge"), ("python.environment_yml", "dependencies: [python=3.12, numpy]")], "python.environment_yml", "python.version"),
    ([("python.packages", []), ("python.installer", "miniforge"), ("python.environment_yml", "dependencies:\n  - pip:\n    - --index-url x")], "python.environment_yml", "pip option"),
    ([("python.packages", []), ("python.installer", "miniforge"), ("python.environment_yml", "prefix: /tmp/x\ndependencies: [numpy]")], "python.environment_yml", "unsupported key"),
    ([("python.packages", []), ("python.installer", "miniforge"), ("python.environment_yml", "dependencies: [numpy")], "python.environment_yml", "not valid YAML"),
    ([("python.installer", "pip")], "python.installer", "'uv', 'miniforge', 'anaconda'"),
    ([("python.version", "3.8")], "python.version", "3.9 to 3.13"),
    ([("python.version", "3.14")], "python.version", "3.9 to 3.13"),
    ([("python.version", "3")], "python.version", "3.9 to 3.13"),
    ([("python.version", 3.11)], "python.version", "must be a string"),
    # repository URLs and refs
    ([("repositories[0].url", "http://127.0.0.1/ooi-notebooks.git")], "repositories[0].url", "https://"),
    ([("repositories[0].url", "ssh://git@example.org/org/repo.git")], "repositories[0].url", "https://"),
    ([("repositories[0].url", "git@github.com:org/repo.git")], "repositories[0].url", "SSH-style"),
    ([("repositories[0].url", "file:///srv/repo.git")], "repositories[0].url", "https://"),
    ([("repositories[0].url", "https://alice:s3cret@example.org/org/repo.git")], "repositories[0].url", "credentials"),
    ([("repositories[0].url", "https://ghp_token@example.org/org/repo.git")], "repositories[0].url", "credentials"),
    ([("repositories[0].url", "https://example.org/org/repo.git?token=x")], "repositories[0].url", "query"),
    ([("repositories[0].url", "https://example.org/org/repo.git#main")], "repositories[0].url", "fragment"),
    ([("repositories[0].url", "https:///org/repo.git")], "repositories[0].url", "host"),
    ([("repositories[0].url", "https://example.org/org/repo.git; rm -rf /")], "repositories[0].url", "spaces"),
    ([("repositories[0].ref", "v1 .0")], "repositories[0].ref", "spaces"),
    ([("repositories[0].ref", "--upload-pack=x")], "repositories[0].ref", "start with '-'"),
    ([("repositories[0].ref", "main..dev")], "repositories[0].ref", "'..'"),
    ([("repositories[0].ref", "heads/")], "repositories[0].ref", "empty '/' parts"),
    ([("repositories[0].ref", "v1.0.lock")], "repositories[0].ref", ".lock"),
    ([("repositories[0]", {"url": "https://example.org/r.git", "destination": "/datadrive/r"})], "repositories[0].ref", "required"),
    # destinations: relative, '..', outside the data disk or /opt, shared
    ([("data[0].destination", "data/ooi")], "data[0].destination", "absolute"),
    ([("data[0].destination", "/datadrive/../etc/ooi")], "data[0].destination", "'..'"),
    ([("data[0].destination", "/etc/ooi")], "data[0].destination", "not inside the data disk"),
    ([("data[0].destination", "/opt/ooi")], "data[0].destination", "not inside the data disk"),
    ([("data[0].destination", "/datadrive/data ooi")], "data[0].destination", "characters other than"),
    ([("data[0].destination", "/datadrive/$(id)")], "data[0].destination", "characters other than"),
    ([("repositories[0].destination", "notebooks")], "repositories[0].destination", "absolute"),
    ([("repositories[0].destination", "/datadrive/../../root/nb")], "repositories[0].destination", "'..'"),
    ([("repositories[0].destination", "/srv/notebooks")], "repositories[0].destination", "or below /opt"),
    ([("repositories[0].destination", "/opt")], "repositories[0].destination", "a folder below /opt"),
    ([("repositories[0].destination", "/opt/labimage/nb")], "repositories[0].destination", "installs Python"),
    ([("repositories[0].destination", "/datadrive/data/ooi")], "repositories[0].destination", "same folder as data[0].destination"),
    ([("repositories[0].destination", "/datadrive/data/ooi/nb")], "repositories[0].destination", "overlaps data[0].destination"),
    ([("data[0].prefix", "/AT4212/")], "data[0].prefix", "leading '/'"),
    ([("data[0].prefix", "../AT4212/")], "data[0].prefix", "'..'"),
    ([("data[0].prefix", "AT4212//ctd/")], "data[0].prefix", "empty"),
    ([("data[0].prefix", DELETE), ("data[0].blobs", ["AT4212/../../x.nc"])], "data[0].blobs[0]", "'..'"),
    ([("data[0].prefix", DELETE), ("data[0].blobs", ["a.nc", "a.nc"])], "data[0].blobs", "more than once"),
    ([("data[0].prefix", DELETE), ("data[0].blobs", [])], "data[0].blobs", "must not be empty"),
    ([("data[0].prefix", DELETE)], "data[0].prefix", "either prefix"),
    ([("data[0].blobs", ["a.nc"])], "data[0].prefix", "either prefix"),
    ([("data[0].destination", DELETE)], "data[0].destination", "required"),
    # the data disk
    ([("data_disk.size_gb", 0)], "data_disk.size_gb", "at least 1"),
    ([("data_disk.size_gb", 32768)], "data_disk.size_gb", "at most 32767"),
    ([("data_disk.size_gb", "256")], "data_disk.size_gb", "whole number"),
    ([("data_disk.size_gb", 256.5)], "data_disk.size_gb", "whole number"),
    ([("data_disk.size_gb", True)], "data_disk.size_gb", "whole number"),
    ([("data_disk.lun", 64)], "data_disk.lun", "at most 63"),
    ([("data_disk.lun", -1)], "data_disk.lun", "at least 0"),
    ([("data_disk.mount_point", "/")], "data_disk.mount_point", "'/'"),
    ([("data_disk.mount_point", "/etc/data")], "data_disk.mount_point", "/etc"),
    ([("data_disk.mount_point", "/opt/data")], "data_disk.mount_point", "/opt"),
    ([("data_disk.mount_point", "/mnt")], "data_disk.mount_point", "/mnt"),
    ([("data_disk.mount_point", "/home/alice")], "data_disk.mount_point", "/home"),
    ([("data_disk.mount_point", "datadrive")], "data_disk.mount_point", "absolute"),
    ([("data_disk.mount_point", "/datadrive/../etc")], "data_disk.mount_point", "'..'"),
    ([("data_disk.filesystem", "btrfs")], "data_disk.filesystem", "'xfs', 'ext4'"),
    # the VM
    ([("vm.os_disk_size_gb", 10)], "vm.os_disk_size_gb", "at least 30"),
    ([("vm.size", "Standard_D2ads_v6")], "vm.size", "add image.gallery"),
    ([("vm.max_price", 0.05)], "vm.max_price", "only when spot"),
    ([("vm.spot", True), ("vm.max_price", 0)], "vm.max_price", "more than 0"),
    ([("vm.spot", "yes")], "vm.spot", "true or false"),
    ([("vm.image.version", "newest")], "vm.image.version", "'latest'"),
    ([("vm.image.publisher", "Canonical; id")], "vm.image.publisher", "letters, digits"),
    # notebooks
    ([("notebooks.run", ["../secret/*.ipynb"])], "notebooks.run[0]", "'..'"),
    ([("notebooks.run", ["notebooks/*"])], "notebooks.run[0]", ".ipynb"),
    ([("notebooks.run", ["/etc/*.ipynb"])], "notebooks.run[0]", "absolute pattern"),
    ([("notebooks.run", ["notebooks/$(id).ipynb"])], "notebooks.run[0]", "characters other than"),
    ([("notebooks.run", "notebooks/*.ipynb")], "notebooks.run", "must be a list"),
    ([("repositories", [])], "notebooks.run[0]", "needs a repository"),
    ([("notebooks.timeout_minutes", 0)], "notebooks.timeout_minutes", "at least 1"),
    ([("notebooks.timeout_minutes", 241)], "notebooks.timeout_minutes", "at most 240"),
    ([("notebooks.kernel", "python 3")], "notebooks.kernel", "kernel names"),
    # auto-stop and relaunch
    ([("autostop.time", "7pm")], "autostop.time", "HH:MM"),
    ([("autostop.time", "24:00")], "autostop.time", "HH:MM"),
    ([("autostop.time_zone", "Mars/Olympus_Mons")], "autostop.time_zone", "IANA"),
    ([("autostop.time_zone", "../../etc/passwd")], "autostop.time_zone", "IANA"),
    ([("autostop.time_zone", "Europe/Berlin ")], "autostop.time_zone", "IANA"),
    ([("relaunch.keep_running", "no")], "relaunch.keep_running", "true or false"),
    # wrong types and missing fields
    ([("name", 5)], "name", "must be a string"),
    ([("tags", ["a"])], "tags", "must be an object"),
    ([("data", {})], "data", "must be a list"),
    ([("vm", "big")], "vm", "must be an object"),
    ([("image", DELETE)], "image", "required"),
    ([("image.name", DELETE)], "image.name", "required"),
    ([("owner", None)], "owner", "must be a string"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    BAD_INPUTS,
    ids=[f"{field}:{i}" for i, (_, field, _) in enumerate(BAD_INPUTS)],
)
def test_bad_input_is_reported_at_its_field(
    changes: list[tuple[str, Any]], field: str, fragment: str
) -> None:
    doc = seed()
    for path, value in changes:
        doc = mutate(doc, path, value)

    problems = problems_of(doc)

    at_field = [p for p in problems if p.field == field]
    assert at_field, f"no problem at {field!r}; got {problems}"
    assert any(fragment in p.message for p in at_field), at_field
    for problem in problems:  # no raw pydantic wording
        assert not problem.message.startswith("Value error")
        assert "pydantic" not in problem.message


def test_every_problem_is_reported_at_once() -> None:
    doc = mutate(mutate(mutate(seed(), "name", "Bad Name"), "vm.size", "big"), "colour", "x")

    fields = {p.field for p in problems_of(doc)}

    assert {"name", "vm.size", "colour"} <= fields


def test_several_destination_problems_are_reported_together() -> None:
    doc = mutate(seed(), "data[0].destination", "/etc/ooi")
    doc = mutate(doc, "repositories[0].destination", "/srv/nb")

    fields = {p.field for p in problems_of(doc)}

    assert fields == {"data[0].destination", "repositories[0].destination"}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{", "not valid JSON"),
        (b"", "not valid JSON"),
        (b'{"name": "a",}', "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"hello"', "JSON object"),
        (b'{"name": "a", "name": "b"}', "appears twice"),
        (b'{"data_disk": {"size_gb": NaN}}', "NaN"),
        (b"\xff\xfe{}", "UTF-8"),
        (b"[" * 60_000, "nested too deeply"),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "nested too deeply"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_one_problem(body: bytes, fragment: str) -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse_build_request(body)

    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].field == ""
    assert fragment in caught.value.problems[0].message
    assert caught.value.http_status == 400


def test_a_body_over_the_limit_is_refused_before_parsing() -> None:
    body = json.dumps(seed()).encode()
    body = body[:-1] + b" " * (MAX_REQUEST_BYTES + 1 - len(body)) + b"}"

    with pytest.raises(RequestTooLarge) as caught:
        parse_build_request(body)

    assert caught.value.http_status == 413
    assert str(MAX_REQUEST_BYTES) in caught.value.to_body()["problems"][0]["message"]


def test_a_body_exactly_at_the_limit_is_accepted() -> None:
    body = json.dumps(seed()).encode()
    body = body[:-1] + b" " * (MAX_REQUEST_BYTES - len(body)) + b"}"
    assert len(body) == MAX_REQUEST_BYTES

    assert parse_build_request(body).name == "ooi-jupyter"


def test_the_error_body_has_the_documented_shape() -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse_build_request(json.dumps(mutate(seed(), "vm.size", "big")).encode())

    body = caught.value.to_body()

    assert body["error"] == "invalid request"
    assert body["problems"] == [{"field": "vm.size", "message": body["problems"][0]["message"]}]


def test_a_minimal_request_gets_the_recipe_defaults() -> None:
    body = {"name": "ooi", "owner": "alice", "project": "ooi", "image": {"name": "img"}}

    request = parse_build_request(json.dumps(body).encode())

    assert request.vm.size == "Standard_D2s_v5"
    assert (request.vm.image.publisher, request.vm.image.offer) == ("Canonical", "ubuntu-24_04-lts")
    assert (request.vm.image.sku, request.vm.image.version) == ("server", "latest")
    assert request.data_disk.size_gb == 256
    assert request.data_disk.mount_point == "/datadrive"
    assert request.data_disk.filesystem == "xfs"
    assert (request.python.installer, request.python.version) == ("uv", "3.11")
    assert request.relaunch.verify and not request.relaunch.keep_running
    assert request.autostop.enabled
    assert request.notebooks.timeout_minutes == 20


def test_the_security_type_defaults_to_trusted_launch_only_with_a_gallery() -> None:
    plain = parse_build_request(json.dumps(seed()).encode())
    assert plain.security_choice()[0] == "Standard"
    assert "managed image" in plain.security_choice()[1]
    gallery = parse_build_request(json.dumps(mutate(seed(), "image.gallery", GALLERY)).encode())
    assert gallery.security_choice()[0] == "TrustedLaunch"
    asked = mutate(mutate(seed(), "image.gallery", GALLERY), "vm.security_type", "Standard")
    chosen = parse_build_request(json.dumps(asked).encode()).security_choice()
    assert chosen == ("Standard", "asked for in vm.security_type")


def test_paths_are_normalised() -> None:
    doc = mutate(seed(), "data[0].destination", "/datadrive//data/./ooi/")
    doc = mutate(doc, "data_disk.mount_point", "/datadrive/")

    request = parse_build_request(json.dumps(doc).encode())

    assert request.data[0].destination == "/datadrive/data/ooi"
    assert request.data_disk.mount_point == "/datadrive"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("python.packages", ["numpy>=1.26", 'pandas[parquet]>=2,<3; python_version >= "3.10"']),
        ("python.packages", ["torch==2.3.0+cpu", "scikit-learn~=1.5"]),
        ("repositories[0].ref", "0123456789abcdef0123456789abcdef01234567"),
        ("repositories[0].ref", "release/2024-06"),
        ("repositories[0].url", "https://[::1]:8445/ooi-notebooks.git"),
        ("repositories[0].destination", "/opt/notebooks"),
        ("vm.size", "Standard_E4-2ds_v5"),
        ("vm.admin_username", "lab_user-1"),
        ("data_disk.mount_point", "/data"),
        ("image.name", "jupyter.ooi_"),
        ("notebooks.run", ["/datadrive/notebooks/**/*.ipynb", "notebooks/[0-9]*.ipynb"]),
        ("autostop", {"enabled": False}),
        ("tags", {"cost-center": "ocean", "Team Name": "physics & chemistry"}),
    ],
)
def test_good_variations_are_accepted(path: str, value: Any) -> None:
    doc = mutate(seed(), path, value)
    if path == "data_disk.mount_point":
        doc = mutate(doc, "data[0].destination", "/data/ooi")
        doc = mutate(doc, "repositories[0].destination", "/data/notebooks")

    parse_build_request(json.dumps(doc).encode())


def test_a_request_round_trips_through_json() -> None:
    request = parse_build_request(SEED.read_bytes())

    again = parse_build_request(request.model_dump_json().encode())

    assert again == request
    assert isinstance(again, BuildRequest)


def test_resource_tags_carry_owner_and_project() -> None:
    request = parse_build_request(SEED.read_bytes())

    assert request.resource_tags() == {
        "cost-center": "oceanography",
        "owner": "alice@example.org",
        "project": "ooi",
    }


def test_the_request_is_frozen() -> None:
    request = parse_build_request(SEED.read_bytes())

    with pytest.raises(ValueError):
        request.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("zone", ["Europe", "America/Indiana", "posixrules/../UTC", "Etc"])
def test_a_time_zone_that_is_a_tzdata_folder_is_a_problem_and_the_others_are_still_reported(
    zone: str,
) -> None:
    doc = mutate(mutate(seed(), "autostop.time_zone", zone), "vm.size", "big")

    fields = {p.field for p in problems_of(doc)}

    assert {"autostop.time_zone", "vm.size"} <= fields


def test_a_deeply_nested_environment_file_is_a_problem_not_a_crash() -> None:
    doc = mutate(seed(), "python.installer", "miniforge")
    doc = mutate(doc, "python.packages", None)
    doc["python"].pop("packages")
    doc = mutate(doc, "python.environment_yml", "[" * 500)

    problems = problems_of(doc)

    assert [p.field for p in problems] == ["python.environment_yml"]


def test_anaconda_is_refused_with_a_reason_instead_of_failing_at_install() -> None:
    problems = problems_of(mutate(seed(), "python.installer", "anaconda"))
    (problem,) = [p for p in problems if p.field == "python.installer"]
    assert "miniforge" in problem.message


def test_replace_is_for_managed_images_only_never_a_gallery_version() -> None:
    doc = mutate(seed(), "image.replace", True)
    assert parse_build_request(json.dumps(doc).encode()).image.replace is True
    gallery = {"gallery_name": "lab_gallery", "definition": "jupyter", "version": "1.0.0"}
    refused = problems_of(mutate(doc, "image.gallery", gallery))
    assert [p.field for p in refused] == ["image.replace"]
    assert "new image.gallery.version" in refused[0].message
