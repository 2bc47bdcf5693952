"""The OpenAPI paths of the images and build-logs routes (merged into shared.openapi)."""

from __future__ import annotations

from typing import Any

IMAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {
            "type": "string",
            "description": "A managed image's name, or <gallery>:<definition>:<version>.",
        },
        "kind": {"type": "string", "enum": ["managed-image", "gallery-version"]},
        "id": {"type": "string"},
        "state": {"type": ["string", "null"], "description": "Azure's provisioningState."},
        "build_id": {"type": "string"},
        "request_name": {"type": ["string", "null"]},
        "owner": {"type": ["string", "null"]},
        "project": {"type": ["string", "null"]},
        "created": {"type": ["string", "null"], "format": "date-time"},
        "size_gb": {"type": ["integer", "null"], "description": "OS plus data disks."},
        "manifest_digest": {
            "type": ["string", "null"],
            "description": "Digest of the image's manifest; null until manifests are recorded.",
        },
    },
}
LOG_LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "logs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "bytes": {"type": "integer"},
                    "content_type": {"type": "string"},
                },
            },
        },
    },
}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _path(name: str, description: str, max_length: int) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1, "maxLength": max_length},
    }


def image_and_log_paths(error: dict[str, Any], build_id: dict[str, Any]) -> dict[str, Any]:
    """The paths, given the shared error schema and build id parameter."""
    image_name = _path("name", "A managed image's name, or <gallery>:<definition>:<version>.", 242)
    job = _path(
        "job",
        "An entry name from the list (<vm>.<job>.log or <vm>.<job>.<notebook>.ipynb); a "
        "job's log may be named without '.log'.",
        300,
    )
    return {
        "/api/images": {
            "get": {
                "operationId": "listImages",
                "summary": "Images labimage builds made (a user's own; all for administrators)",
                "responses": {
                    "200": _json(
                        "The images.",
                        {
                            "type": "object",
                            "properties": {"images": {"type": "array", "items": IMAGE_SCHEMA}},
                        },
                    ),
                    "503": _json("The Azure call failed.", error),
                },
            }
        },
        "/api/images/{name}": {
            "get": {
                "operationId": "getImage",
                "summary": "One image",
                "parameters": [image_name],
                "responses": {
                    "200": _json("The image.", IMAGE_SCHEMA),
                    "400": _json("The name is not a valid image name.", error),
                    "404": _json("No such image, or one of another owner's.", error),
                    "409": _json("The image was not made by a labimage build.", error),
                },
            },
            "delete": {
                "operationId": "deleteImage",
                "summary": "Delete an image a labimage build made",
                "description": "Refused while a VM still uses the image (the answer names it) "
                "or while its build is still making it.",
                "parameters": [image_name],
                "responses": {
                    "202": _json("Deletion started.", {"type": "object"}),
                    "400": _json("The name is not a valid image name.", error),
                    "404": _json("No such image, or one of another owner's.", error),
                    "409": _json("Not labimage's, still used by a VM, or still being made.", error),
                },
            },
        },
        "/api/builds/{id}/logs": {
            "get": {
                "operationId": "listBuildLogs",
                "summary": "The guest job logs and executed notebooks a build kept",
                "description": "Copied to Blob storage before each VM is deleted, failed "
                "builds included; secrets are scrubbed.",
                "parameters": [build_id],
                "responses": {
                    "200": _json("The entries.", LOG_LIST_SCHEMA),
                    "404": _json("No build of the caller's has this id.", error),
                },
            }
        },
        "/api/builds/{id}/logs/{job}": {
            "get": {
                "operationId": "getBuildLog",
                "summary": "One log (text/plain) or executed notebook (.ipynb JSON)",
                "parameters": [build_id, job],
                "responses": {
                    "200": {
                        "description": "The content.",
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            "application/x-ipynb+json": {"schema": {"type": "object"}},
                        },
                    },
                    "404": _json("No such build of the caller's, or no such entry.", error),
                },
            }
        },
    }
