"""The workstations' part of the OpenAPI document (shared/openapi.py adds it to its paths)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from shared.workstations.request import BatchRequest, WorkstationRequest

_STATES = ["creating", "verifying", "running", "stopped", "deleting", "deleted"]
_SUMMARY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "owner": {"type": "string"},
        "state": {"type": "string", "enum": _STATES},
        "size": {"type": "string"},
        "image_source": {"type": "string"},
        "hours_this_month": {"type": "number"},
        "monthly_hours": {"type": ["number", "null"]},
    },
}
_STATUS = {
    "type": "object",
    "description": "A summary plus image_id, autostop, idle_minutes, quota_hours_left, "
    "quota_reached, cost_this_month, stop_reason, last_check, error, events, and connection "
    "(address, username, known_hosts_line, ssh_command, tunnel_command, jupyter_url) while "
    "running.",
    "properties": {**_SUMMARY["properties"], "connection": {"type": ["object", "null"]}},
}


def _body(model: type[BaseModel], schemas: dict[str, Any], template: str) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=template, mode="validation")
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    ref = {"$ref": template.format(model=model.__name__)}
    return {"required": True, "content": {"application/json": {"schema": ref}}}


def workstation_paths(
    schemas: dict[str, Any], error: dict[str, Any], template: str
) -> dict[str, Any]:
    """Paths of /api/workstations...; request models are added to `schemas`."""

    def answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    ws_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "Workstation id (w and 9 letters or digits).",
        "schema": {"type": "string", "pattern": "^w[a-z0-9]{9}$"},
    }
    missing = answer("No such workstation, or not the caller's.", error)
    refused = answer("The workstation's state does not allow it (field state).", error)

    def action(op: str, summary: str, **extra: Any) -> dict[str, Any]:
        responses = {"202": answer("Done or under way.", _SUMMARY), "404": missing, "409": refused}
        responses.update(extra)
        return {
            "post": {
                "operationId": op,
                "summary": summary,
                "parameters": [ws_id],
                "responses": responses,
            }
        }

    accepted = {
        "type": "object",
        "properties": {"id": {"type": "string"}, "status_url": {"type": "string"}},
    }
    paths: dict[str, Any] = {
        "/api/workstations": {
            "post": {
                "operationId": "createWorkstation",
                "summary": "Start a workstation from a labimage image for one owner",
                "requestBody": _body(WorkstationRequest, schemas, template),
                "responses": {
                    "202": answer("Accepted: created, then verified, asynchronously.", accepted),
                    "400": answer("Invalid request: each problem names its field.", error),
                },
            },
            "get": {
                "operationId": "listWorkstations",
                "summary": "The caller's workstations (all, for an administrator)",
                "responses": {"200": answer("The workstations.", {"type": "object"})},
            },
        },
        "/api/workstations:batch": {
            "post": {
                "operationId": "createWorkstations",
                "summary": "One workstation per owner (administrators); each owner on its own",
                "requestBody": _body(BatchRequest, schemas, template),
                "responses": {
                    "202": answer("At least one accepted; per-owner answers.", {"type": "object"}),
                    "400": answer("Invalid request, or none accepted.", error),
                    "403": answer("The caller is not an administrator.", error),
                },
            }
        },
        "/api/workstations/{id}": {
            "get": {
                "operationId": "getWorkstation",
                "summary": "State, hours and cost this month, and how to connect",
                "parameters": [ws_id],
                "responses": {"200": answer("The workstation.", _STATUS), "404": missing},
            },
            "delete": {
                "operationId": "deleteWorkstation",
                "summary": "Delete the VM, NIC, IP, disks and network; nothing is left",
                "parameters": [ws_id],
                "responses": {"202": answer("Deleting.", _SUMMARY), "404": missing, "409": refused},
            },
        },
        "/api/workstations/{id}/start": action(
            "startWorkstation",
            "Start a stopped workstation; it is verified before it counts as running",
        ),
        "/api/workstations/{id}/stop": action("stopWorkstation", "Deallocate a workstation"),
        "/api/workstations/{id}/snooze": action(
            "snoozeWorkstation", "Postpone tonight's auto-stop by ?hours=N"
        ),
    }
    paths["/api/workstations/{id}/start"]["post"]["responses"]["409"] = answer(
        "Not stopped (field state), or this month's quota is used up and the caller is not an "
        "administrator (field monthly_hours).",
        error,
    )
    paths["/api/workstations/{id}/snooze"]["post"]["parameters"].append(
        {
            "name": "hours",
            "in": "query",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    )
    page = {
        "description": "A small HTML page.",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
    link_parameters = [
        ws_id,
        {
            "name": "action",
            "in": "path",
            "required": True,
            "schema": {"enum": ["skip", "delay1", "delay2"]},
        },
        {"name": "stop", "in": "query", "required": True, "schema": {"type": "string"}},
        {"name": "sig", "in": "query", "required": True, "schema": {"type": "string"}},
    ]
    link_answers = {"200": page, "400": page, "403": page, "404": page, "410": page}
    paths["/api/links/workstations/{id}/{action}"] = {
        method: {
            "operationId": f"{method}WorkstationLink",
            "summary": summary,
            "description": "A signed one-click link from the auto-stop warning: no sign-in and no "
            "key; bound to one workstation, action and night's stop, expires at the stop, works "
            "once (410 after).",
            "security": [],
            "parameters": link_parameters,
            "responses": link_answers,
        }
        for method, summary in (("get", "Confirmation page"), ("post", "Do the link's action"))
    }
    return paths
