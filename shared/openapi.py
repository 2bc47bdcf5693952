"""The API's OpenAPI 3.1 document, generated from the pydantic models that validate requests."""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from shared.models import (
    MAX_REQUEST_BYTES,
    BuildAccepted,
    BuildList,
    BuildRequest,
    BuildStatus,
    ErrorBody,
)

API_TITLE = "labimage"
API_VERSION = "0.1.0"
_REF_TEMPLATE = "#/components/schemas/{model}"
_SCHEMA_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (BuildRequest, "validation"),
    (BuildAccepted, "serialization"),
    (BuildStatus, "serialization"),
    (BuildList, "serialization"),
    (ErrorBody, "serialization"),
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
        "description": "Build id, as returned by POST /api/builds.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 64},
    }
    paths = {
        "/api/builds": {
            "post": {
                "operationId": "createBuild",
                "summary": "Start a build",
                "description": "Validate the request, store it and queue the first stage. The "
                f"body may be at most {MAX_REQUEST_BYTES} bytes; unknown fields are refused.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": request_ref}},
                },
                "responses": {
                    "202": accepted,
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
                    "404": _json_response("No build has this id.", error),
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
        "/api/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "responses": {"200": _json_response("The OpenAPI document.", {"type": "object"})},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": API_TITLE,
            "version": API_VERSION,
            "description": "Build, verify and capture Jupyter workstation images on Azure "
            "from one JSON document.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _list_parameters() -> list[dict[str, Any]]:
    state_schema = {
        "type": "string",
        "enum": ["queued", "running", "succeeded", "failed", "cancelled"],
    }
    return [
        _query("state", "Only builds in this state.", state_schema),
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
