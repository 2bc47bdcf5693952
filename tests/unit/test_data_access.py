"""A request may name only the data containers the deployment shares, never the platform's."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from shared.data_access import data_problems
from shared.models.parse import parse_build_request
from shared.settings import Settings

SEED = json.loads((Path(__file__).resolve().parents[2] / "examples/seed-request.json").read_text())
BASE = Settings(
    storage_connection="UseDevelopmentStorage=true",
    data_storage_connection="AccountName=data;AccountKey=a2V5",
    subscription_id="s",
    resource_group="rg",
    location="westeurope",
    data_containers=("ooi-data", "research-*", "*"),
)


def problems_for(container: str, settings: Settings = BASE) -> list[tuple[str, str]]:
    doc = json.loads(json.dumps(SEED))
    doc["data"][0]["container"] = container
    request = parse_build_request(json.dumps(doc).encode())
    return [(p.field, p.message) for p in data_problems(request, settings)]


@pytest.mark.parametrize(
    "container", ["azure-webjobs-secrets", "azure-webjobs-hosts", "app-package-func-1a2b3c"]
)
def test_the_platforms_containers_are_refused_even_when_a_pattern_matches(container: str) -> None:
    (problem,) = problems_for(container)
    assert problem[0] == "data[0].container" and "belongs to the platform" in problem[1]


def test_only_listed_containers_are_allowed() -> None:
    narrow = replace(BASE, data_containers=("ooi-data", "research-*"))
    assert problems_for("ooi-data", narrow) == []
    assert problems_for("research-2024", narrow) == []
    (problem,) = problems_for("payroll", narrow)
    assert problem[0] == "data[0].container" and "research-*" in problem[1]


def test_no_list_means_no_container_and_no_account_means_no_data() -> None:
    assert problems_for("ooi-data", replace(BASE, data_containers=()))
    (problem,) = problems_for("ooi-data", replace(BASE, data_storage_connection=None))
    assert "no data storage account" in problem[1]


def test_the_data_sas_is_read_list_https_only_on_an_https_account() -> None:
    from urllib.parse import parse_qs, urlsplit

    from shared.azure.blob_sas import read_only_container_url

    connection = (
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5a2V5a2V5a2V5;"
        "EndpointSuffix=core.windows.net"
    )
    query = parse_qs(urlsplit(read_only_container_url(connection, "ooi-data")).query)
    assert query["sp"] == ["rl"] and query["spr"] == ["https"] and query["sr"] == ["c"]
