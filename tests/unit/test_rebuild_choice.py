"""`rebuild: auto`: which image a build starts from, and the environment digest it compares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.models.request import BuildRequest
from shared.rebuild import EarlierImage, choose_start, environment_digest

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed-request.json"


def request(**changes: Any) -> BuildRequest:
    body = json.loads(SEED.read_text())
    for path, value in changes.items():
        target = body
        *parents, leaf = path.split("__")
        for key in parents:
            target = target[key]
        target[leaf] = value
    return BuildRequest.model_validate(body)


def test_rebuild_is_never_unless_asked_and_only_never_or_auto() -> None:
    assert request().rebuild == "never"
    assert request(rebuild="auto").rebuild == "auto"
    with pytest.raises(ValueError, match="rebuild"):
        request(rebuild="always")


def test_data_notebooks_image_name_and_tags_leave_the_digest_alone() -> None:
    base = environment_digest(request())
    assert (
        environment_digest(
            request(
                data=[
                    {"container": "ooi-data", "prefix": "AT4213/", "destination": "/datadrive/d"}
                ],
                repositories=[],
                notebooks__run=["/datadrive/x.ipynb"],
                image__name="another-name",
                tags={"week": "48"},
                rebuild="auto",
            )
        )
        == base
    )


@pytest.mark.parametrize(
    "change",
    [
        {"python__installer": "miniforge"},
        {"python__version": "3.12"},
        {"python__packages": ["jupyterlab>=4", "numpy>=1.26", "pandas>=2.1", "xarray>=2024.1"]},
        {"python__packages": [], "python__requirements_txt": "numpy>=1.26\nscipy==1.13.0\n"},
        {"python__jupyter": {"lab": False}},
        {
            "vm__image": {
                "publisher": "Canonical",
                "offer": "ubuntu-24_04-lts",
                "sku": "server",
                "version": "24.04.202411030",
            }
        },
        {"data_disk__filesystem": "ext4"},
    ],
)
def test_what_the_python_install_depends_on_changes_the_digest(change: dict[str, Any]) -> None:
    assert environment_digest(request(**change)) != environment_digest(request())


def test_package_order_does_not_matter() -> None:
    packages = list(reversed(request().python.packages))
    assert environment_digest(request(python__packages=packages)) == environment_digest(request())


def test_an_image_whose_digest_differs_is_never_reused() -> None:
    digest = environment_digest(request())
    other = environment_digest(request(python__version="3.12"))
    earlier = [
        EarlierImage("bnewest001", "/images/newest", other),
        EarlierImage("bgone00002", "/images/gone", None),
        EarlierImage("bolder0003", "/images/older", "0" * 64),
    ]
    choice = choose_start(digest, earlier)
    assert choice.image_id is None and choice.source_build is None
    assert "bnewest001: environment differs" in choice.reason
    assert "bgone00002: its image is gone" in choice.reason
    assert choice.as_dict()["mode"] == "full"


def test_the_newest_image_with_the_same_digest_is_chosen() -> None:
    digest = environment_digest(request())
    earlier = [
        EarlierImage("bnewest001", "/images/newest", "f" * 64),
        EarlierImage("bmatch0002", "/images/match", digest),
        EarlierImage("bmatch0003", "/images/older-match", digest),
    ]
    choice = choose_start(digest, earlier)
    assert (choice.image_id, choice.source_build) == ("/images/match", "bmatch0002")
    assert choice.as_dict()["mode"] == "rebuild"
    assert "bmatch0002" in choice.reason and "not installed again" in choice.reason


def test_without_an_earlier_build_it_says_so() -> None:
    choice = choose_start(environment_digest(request()), [])
    assert choice.image_id is None
    assert "no earlier succeeded build" in choice.reason
