"""Every example request in examples/ is valid and means what its file name says."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.models import BuildRequest, parse_build_request

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.json"))


def load(name: str) -> BuildRequest:
    return parse_build_request((EXAMPLES[0].parent / name).read_bytes())


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_is_a_valid_request(path: Path) -> None:
    request = parse_build_request(path.read_bytes())

    assert parse_build_request(request.model_dump_json().encode()) == request


def test_the_examples_are_all_there() -> None:
    names = {p.name for p in EXAMPLES}

    assert {"seed-request.json", "conda-environment.json", "gallery-keep-running.json"} <= names


def test_the_seed_request_is_the_manual_recipe() -> None:
    request = load("seed-request.json")

    assert request.vm.image.offer == "ubuntu-24_04-lts"
    assert request.vm.size == "Standard_D2s_v5"
    assert (request.data_disk.size_gb, request.data_disk.mount_point) == (256, "/datadrive")
    assert request.data_disk.filesystem == "xfs"
    assert (request.python.installer, request.python.version) == ("uv", "3.11")
    assert {p.split(">=")[0] for p in request.python.packages} >= {
        "numpy",
        "pandas",
        "xarray",
        "matplotlib",
    }
    assert request.data[0].container == "ooi-data"
    assert request.data[0].prefix == "AT4212/"
    assert request.data[0].destination == "/datadrive/data/ooi"
    assert request.repositories[0].url == "https://127.0.0.1:8445/ooi-notebooks.git"
    assert request.repositories[0].ref == "v1.0"
    assert request.notebooks.run == ["notebooks/*.ipynb"]
    assert request.image.name == "jupyter-ooi-ubuntu2404"
    assert request.image.gallery is None
    assert request.relaunch.verify and not request.relaunch.keep_running
    assert (request.autostop.time, request.autostop.time_zone) == ("19:00", "Europe/Berlin")


def test_the_conda_example_uses_an_environment_file() -> None:
    request = load("conda-environment.json")

    assert request.python.installer == "miniforge"
    assert request.python.environment_yml
    assert not request.python.packages


def test_the_gallery_example_keeps_its_vm_with_autostop() -> None:
    request = load("gallery-keep-running.json")

    assert request.image.gallery is not None
    assert request.relaunch.keep_running
    assert request.autostop.enabled
