"""Thousands of hostile build requests: each is accepted or refused with problems that name a
field (400/413); none makes the validation raise anything else."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.data_access import data_problems
from shared.models.parse import parse_build_request
from shared.models.problems import RequestRejected
from shared.settings import Settings
from tests.fuzz.strategies import encoded, mutated_requests

POLICY = Settings(
    storage_connection="UseDevelopmentStorage=true",
    data_storage_connection="AccountName=data;AccountKey=a2V5",
    subscription_id="s",
    resource_group="rg",
    location="westeurope",
    data_containers=("ooi-data", "research-*"),
)


def _check(body: bytes) -> str:
    try:
        request = parse_build_request(body)
    except RequestRejected as refused:
        assert refused.http_status in (400, 413)
        assert refused.problems, "a refusal lists at least one problem"
        for problem in refused.problems:
            assert isinstance(problem.field, str) and problem.message.strip()
        return "refused"
    for problem in data_problems(request, POLICY):
        assert problem.field.startswith("data[") and problem.message
    for problem in data_problems(request, replace(POLICY, data_storage_connection=None)):
        assert problem.field.endswith(".container")
    request.model_dump(mode="json")  # what is stored must serialise
    return "accepted"


def test_mutated_requests_are_accepted_or_refused_naming_fields() -> None:
    seen = {"accepted": 0, "refused": 0}

    @settings(
        max_examples=2000,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(mutated_requests())
    def one(document: object) -> None:
        seen[_check(encoded(document))] += 1

    one()
    # The generator must reach both outcomes, or it tests nothing of interest.
    assert seen["accepted"] > 50 and seen["refused"] > 500, seen


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_are_refused_cleanly(body: bytes) -> None:
    assert _check(body) == "refused" or body.strip().startswith(b"{")
