"""The OpenAPI document: 3.1, every reference resolves, and it describes what the API enforces."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from shared.models import MAX_REQUEST_BYTES
from shared.openapi import openapi_document


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    result: dict[str, Any] = document["components"]["schemas"][name]
    return result


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


def test_it_is_openapi_3_1_and_plain_json(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"]
    assert json.loads(json.dumps(document)) == document


def test_every_ref_resolves_and_no_defs_are_left(document: dict[str, Any]) -> None:
    found = list(refs(document))

    assert found
    for ref in found:
        assert ref.startswith("#/components/schemas/")
        assert isinstance(resolve(document, ref), dict)
    assert "$defs" not in json.dumps(document)


def test_it_lists_every_route(document: dict[str, Any]) -> None:
    operations = {(path, method) for path, item in document["paths"].items() for method in item}

    assert operations == {
        ("/api/builds", "post"),
        ("/api/builds", "get"),
        ("/api/builds/{id}", "get"),
        ("/api/builds/{id}/cancel", "post"),
        ("/api/openapi.json", "get"),
        ("/api/costs", "get"),
        ("/api/vms/{resource_group}/{name}/snooze", "post"),
        ("/api/manifests/{sha256}", "get"),
        ("/api/manifests/{sha256}/sbom", "get"),
        ("/api/manifests/{a}/diff/{b}", "get"),
        ("/api/images", "get"),
        ("/api/images/{name}", "get"),
        ("/api/images/{name}", "delete"),
        ("/api/builds/{id}/logs", "get"),
        ("/api/builds/{id}/logs/{job}", "get"),
        ("/api/workstations", "post"),
        ("/api/workstations", "get"),
        ("/api/workstations:batch", "post"),
        ("/api/workstations/{id}", "get"),
        ("/api/workstations/{id}", "delete"),
        ("/api/workstations/{id}/start", "post"),
        ("/api/workstations/{id}/stop", "post"),
        ("/api/workstations/{id}/snooze", "post"),
        ("/api/links/workstations/{id}/{action}", "get"),
        ("/api/links/workstations/{id}/{action}", "post"),
    }


def test_post_builds_documents_its_answers(document: dict[str, Any]) -> None:
    post = document["paths"]["/api/builds"]["post"]

    assert set(post["responses"]) == {"200", "202", "400", "401", "404", "409", "413"}
    assert [p["name"] for p in post["parameters"]] == ["Idempotency-Key"]
    accepted = resolve(
        document, post["responses"]["202"]["content"]["application/json"]["schema"]["$ref"]
    )
    assert set(accepted["properties"]) == {"id", "status_url"}
    error = resolve(
        document, post["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
    )
    assert set(error["properties"]) == {"error", "problems"}
    assert str(MAX_REQUEST_BYTES) in post["description"]


def test_list_builds_takes_the_documented_filters(document: dict[str, Any]) -> None:
    parameters = document["paths"]["/api/builds"]["get"]["parameters"]

    assert {p["name"] for p in parameters} == {"state", "owner", "page_token", "page_size"}


def request_refs(document: dict[str, Any]) -> list[str]:
    """The POST /api/builds body: a build request, or a rebuild from a manifest."""
    body = document["paths"]["/api/builds"]["post"]["requestBody"]["content"]["application/json"]
    return [choice["$ref"] for choice in body["schema"]["oneOf"]]


def test_post_builds_takes_a_request_or_a_rebuild(document: dict[str, Any]) -> None:
    names = [ref.rsplit("/", 1)[1] for ref in request_refs(document)]
    assert names == ["BuildRequest", "RebuildRequest"]
    assert "from_manifest" in schema(document, "RebuildRequest")["required"]


def test_reproduce_is_documented_as_the_controllers_to_set(document: dict[str, Any]) -> None:
    reproduce = schema(document, "BuildRequest")["properties"]["reproduce"]
    assert reproduce["readOnly"] is True
    assert "from_manifest" in reproduce["description"] and "400" in reproduce["description"]


def test_the_request_schema_refuses_unknown_fields_everywhere(document: dict[str, Any]) -> None:
    request = resolve(document, request_refs(document)[0])
    assert request["additionalProperties"] is False

    reachable = {ref.rsplit("/", 1)[1] for ref in refs(request)}
    assert {"VmSpec", "DataDisk", "PythonEnvironment", "DataSource", "Repository"} <= reachable
    for name in reachable | {"RebuildRequest"}:
        assert schema(document, name)["additionalProperties"] is False, name


def test_every_request_field_is_described(document: dict[str, Any]) -> None:
    names = set()
    for request_ref in request_refs(document):
        names |= {request_ref.rsplit("/", 1)[1]} | {
            r.rsplit("/", 1)[1] for r in refs(resolve(document, request_ref))
        }
    for name in names:
        for field, spec in schema(document, name)["properties"].items():
            assert spec.get("description"), f"{name}.{field} has no description"


def test_the_status_schema_has_what_a_person_follows(document: dict[str, Any]) -> None:
    status = schema(document, "BuildStatus")

    assert {"id", "state", "stage", "stages", "events", "image_id", "connection"} <= set(
        status["properties"]
    )
    assert schema(document, "VerificationReport")["properties"]["notebooks"]


def test_each_call_returns_an_independent_copy(document: dict[str, Any]) -> None:
    mine = openapi_document()
    mine["info"]["title"] = "changed"

    assert openapi_document()["info"]["title"] != "changed"


def test_the_document_says_how_to_sign_in_and_where_keys_go(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["signIn"] == {**schemes["signIn"], "type": "http", "scheme": "bearer"}
    assert schemes["functionKey"]["name"] == "x-functions-key"
    assert document["security"] == [{"signIn": []}]
    assert document["paths"]["/api/openapi.json"]["get"]["security"] == []
    assert "/api/automation/" in document["info"]["description"]
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if operation.get("security") == []:  # public: openapi.json and the signed links
                assert path == "/api/openapi.json" or path.startswith("/api/links/"), path
            else:
                assert "401" in operation["responses"], path
