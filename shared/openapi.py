"""The API's OpenAPI 3.1 document, generated from the pydantic models that validate requests."""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from shared.api.caller import ADMIN_ROLE
from shared.manifest.rebuild import RebuildRequest
from shared.models import (
    MAX_REQUEST_BYTES,
    BuildAccepted,
    BuildList,
    BuildRequest,
    BuildStatus,
    ErrorBody,
)
from shared.models.status import ManifestDiff
from shared.openapi_images import image_and_log_paths
from shared.workstations.openapi_paths import workstation_paths

API_TITLE = "labimage"
API_VERSION = "0.1.0"
_REF_TEMPLATE = "#/components/schemas/{model}"
_SCHEMA_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (BuildRequest, "validation"),
    (BuildAccepted, "serialization"),
    (BuildStatus, "serialization"),
    (BuildList, "serialization"),
    (ErrorBody, "serialization"),
    (RebuildRequest, "validation"),
    (ManifestDiff, "serialization"),
]


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document for /api/builds and /api/openapi.json (a fresh copy each call)."""
    return copy.deepcopy(_document())


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    refs, top = models_json_schema(_SCHEMA_MODELS, ref_template=_REF_TEMPLATE)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(refs[(model, mode)])

    request_ref = ref(BuildRequest, "validation")
    accepted = _json_response("The build was accepted.", ref(BuildAccepted, "serialization"))
    error = ref(ErrorBody, "serialization")
    build_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "Build id, as returned by POST /api/builds; any other is not found.",
        "schema": {"type": "string", "pattern": "^b[a-z0-9]{9}$"},
    }
    paths: dict[str, Any] = {
        "/api/builds": {
            "post": {
                "operationId": "createBuild",
                "summary": "Start a build",
                "description": "Validate the request, store it and queue the first stage. The "
                f"body may be at most {MAX_REQUEST_BYTES} bytes; unknown fields are refused.",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "Any string you choose (1-200 printable ASCII "
                        "characters): the same key from the same submitter within 24 hours "
                        "answers 200 with the first build's status instead of a second build.",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [request_ref, ref(RebuildRequest, "validation")],
                                "description": "A build request, or {from_manifest} to "
                                "rebuild exactly what a manifest records.",
                            }
                        }
                    },
                },
                "responses": {
                    "202": accepted,
                    "200": _json_response(
                        "This Idempotency-Key already made this build: its status.",
                        ref(BuildStatus, "serialization"),
                    ),
                    "409": _json_response(
                        "This Idempotency-Key was used for a different request; for a "
                        "rebuild, a blob changed since the manifest (the problem names it); or "
                        "the build would replace an image, or publish into a gallery image "
                        "definition, that another owner's build made.",
                        error,
                    ),
                    "404": _json_response("from_manifest names no manifest of yours.", error),
                    "400": _json_response(
                        "Invalid request: every problem, each with the field to change.", error
                    ),
                    "413": _json_response(
                        f"The body is larger than {MAX_REQUEST_BYTES} bytes.", error
                    ),
                },
            },
            "get": {
                "operationId": "listBuilds",
                "summary": "List builds, newest first",
                "parameters": _list_parameters(),
                "responses": {
                    "200": _json_response("One page of builds.", ref(BuildList, "serialization")),
                    "400": _json_response("A query parameter is invalid.", error),
                },
            },
        },
        "/api/builds/{id}": {
            "get": {
                "operationId": "getBuild",
                "summary": "Status of one build",
                "parameters": [build_id],
                "responses": {
                    "200": _json_response("The build's status.", ref(BuildStatus, "serialization")),
                    "404": _json_response("No build of the caller's has this id.", error),
                },
            }
        },
        "/api/builds/{id}/cancel": {
            "post": {
                "operationId": "cancelBuild",
                "summary": "Cancel a build",
                "description": "The build stops at the next stage boundary and its resources "
                "are cleaned up; follow it at status_url.",
                "parameters": [build_id],
                "responses": {
                    "202": _json_response(
                        "Cancellation was requested.", ref(BuildAccepted, "serialization")
                    ),
                    "404": _json_response("No build has this id.", error),
                    "409": _json_response("The build has already finished.", error),
                },
            }
        },
        "/api/costs": {
            "get": {
                "operationId": "getCosts",
                "summary": "Estimated spend, hours stopped and saving by owner and project",
                "description": "Figures are estimates from the shipped price table (approximate "
                "list prices, dated inside the answer). `problems` lists malformed cost-guard "
                "tags seen in the range.",
                "parameters": [
                    _query(
                        "from",
                        "Start (YYYY-MM-DD or ISO time, UTC); default 30 days ago.",
                        {"type": "string", "maxLength": 40},
                    ),
                    _query(
                        "to", "End, exclusive; default now.", {"type": "string", "maxLength": 40}
                    ),
                ],
                "responses": {
                    "200": _json_response("The summary.", _COSTS_SCHEMA),
                    "400": _json_response(
                        "from or to is not a date, or to is not after from.", error
                    ),
                },
            }
        },
        "/api/vms/{resource_group}/{name}/snooze": {
            "post": {
                "operationId": "snoozeVm",
                "summary": "Postpone a VM's evening auto-stop",
                "description": "Moves today's stop N hours later; when that passes the VM's "
                "local midnight, today's stop is skipped instead. The VM's own stop time is kept.",
                "parameters": [
                    _path("resource_group", "The VM's resource group (in the auto-stop scope)."),
                    _path("name", "The VM's name."),
                    _query(
                        "hours",
                        "Hours to postpone, 1 to the configured maximum.",
                        {"type": "integer", "minimum": 1},
                    ),
                ],
                "responses": {
                    "200": _json_response("The new stop time.", _SNOOZE_SCHEMA),
                    "400": _json_response(
                        "hours is missing or out of range, or the VM has no auto-stop time.", error
                    ),
                    "404": _json_response(
                        "No such VM, or not one the caller may snooze (a user: VMs of their "
                        "own builds; an administrator: labimage's VMs and the auto-stop groups).",
                        error,
                    ),
                    "409": _json_response("The VM changed meanwhile; try again.", error),
                },
            }
        },
        "/api/manifests/{sha256}": {
            "get": {
                "operationId": "getManifest",
                "summary": "What an image holds",
                "description": "The manifest a build recorded after verify: base image exact "
                "version, VM size, installer, Python, every Python package with version and "
                "hashes, the OS packages, every blob with size, MD5, ETag and sha256, every "
                "repository's commit, the notebooks' output digests, labimage's version.",
                "parameters": [_path("sha256", "The manifest's sha256 (the image's tag).")],
                "responses": {
                    "200": _json_response("The manifest.", {"type": "object"}),
                    "404": _json_response("No manifest of the caller's has this digest.", error),
                },
            }
        },
        "/api/manifests/{sha256}/sbom": {
            "get": {
                "operationId": "getManifestSbom",
                "summary": "The image's CycloneDX SBOM (Python and OS packages)",
                "parameters": [_path("sha256", "The manifest's sha256.")],
                "responses": {
                    "200": _json_response("A CycloneDX 1.6 JSON document.", {"type": "object"}),
                    "404": _json_response("No manifest of the caller's has this digest.", error),
                },
            }
        },
        "/api/manifests/{a}/diff/{b}": {
            "get": {
                "operationId": "diffManifests",
                "summary": "What changed between two builds",
                "parameters": [
                    _path("a", "sha256 of the older manifest."),
                    _path("b", "sha256 of the newer manifest."),
                ],
                "responses": {
                    "200": _json_response(
                        "Packages added, removed, upgraded; data changed; commits moved.",
                        ref(ManifestDiff, "serialization"),
                    ),
                    "404": _json_response("a or b names no manifest of the caller's.", error),
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "responses": {"200": _json_response("The OpenAPI document.", {"type": "object"})},
            }
        },
    }
    paths.update(image_and_log_paths(error, build_id))
    paths.update(workstation_paths(schemas, error, _REF_TEMPLATE))
    for path, operations in paths.items():
        if path.startswith("/api/links/"):
            continue  # signed links: public, they carry their own proof
        if path == "/api/openapi.json":
            operations["get"]["security"] = []  # public
            continue
        for operation in operations.values():
            operation["responses"]["401"] = _json_response("Nobody is signed in.", error)
    paths["/api/builds"]["get"]["responses"]["403"] = _json_response(
        "owner names someone else and the caller is not an administrator.", error
    )
    paths["/api/costs"]["get"]["responses"]["403"] = _json_response(
        f"The caller lacks the {ADMIN_ROLE} app role.", error
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": API_TITLE,
            "version": API_VERSION,
            "description": "Build, verify and capture Jupyter workstation images on Azure "
            "from one JSON document.\n\nSign in with Microsoft Entra ID (App Service "
            "authentication): a user sees and acts on their own builds and VMs (others' answer "
            f"404); the {ADMIN_ROLE} app role sees all. Every path is also served under "
            "/api/automation/ (for example /api/automation/builds) for callers holding a "
            "function key (x-functions-key), who act as administrators.\n\nThe same request "
            "body may also be sent to the build-requests queue (setting BUILD_REQUESTS_QUEUE), "
            "bare or as {request, client_request_id, reply_to}: see the README.",
        },
        "security": [{"signIn": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "signIn": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A Microsoft Entra ID access token for the API's app "
                    "registration (az account get-access-token --resource <app id URI>).",
                },
                "functionKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-functions-key",
                    "description": "A function key: the /api/automation/ routes only.",
                },
            },
        },
    }


_COSTS_LINE = {
    "type": "object",
    "properties": {
        "owner": {"type": "string"},
        "project": {"type": "string"},
        "builds": {"type": "integer"},
        "unknown_cost_builds": {"type": "integer", "description": "Builds of unpriced sizes."},
        "spend_estimate": {"type": "number"},
        "hours_stopped_autostop": {"type": "number"},
        "hours_stopped_idle": {"type": "number"},
        "estimated_saving": {"type": "number"},
        "unknown_saving_stops": {"type": "integer"},
    },
}
_COSTS_SCHEMA = {
    "type": "object",
    "properties": {
        "from": {"type": "string", "format": "date-time"},
        "to": {"type": "string", "format": "date-time"},
        "currency": {"type": "string"},
        "prices_as_of": {"type": "string"},
        "prices_source": {"type": "string"},
        "summary": {"type": "array", "items": _COSTS_LINE},
        "problems": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "vm_id": {"type": "string"},
                    "message": {"type": "string"},
                    "at": {"type": "string", "format": "date-time"},
                },
            },
        },
        "notes": {"type": "array", "items": {"type": "string"}},
    },
}
_SNOOZE_SCHEMA = {
    "type": "object",
    "properties": {
        "vm_id": {"type": "string"},
        "stop_at": {"type": ["string", "null"], "format": "date-time"},
        "skipped_today": {"type": "boolean"},
    },
}


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1, "maxLength": 90},
    }


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _list_parameters() -> list[dict[str, Any]]:
    state_schema = {
        "type": "string",
        "enum": ["queued", "running", "succeeded", "failed", "cancelled", "rejected"],
    }
    return [
        _query(
            "state",
            "Only builds in this state; `rejected` lists refused queue submissions with their "
            "problems (administrators).",
            state_schema,
        ),
        _query("owner", "Only builds of this owner.", {"type": "string", "maxLength": 128}),
        _query(
            "page_token",
            "next_page_token from the previous page.",
            {"type": "string", "maxLength": 2048},
        ),
        _query(
            "page_size",
            "Builds per page.",
            {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
        ),
    ]


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }
