"""HTTP: submit, read, list and cancel builds (each at a user and an automation route, see
functions/http.py); the OpenAPI document."""

from __future__ import annotations

import logging

import azure.functions as func

from functions.http import reply, user_and_automation_route
from shared.api import builds, manifests
from shared.api.builds import ApiResponse
from shared.api.caller import Caller
from shared.openapi import openapi_document
from shared.runtime import get_runtime

logger = logging.getLogger(__name__)

bp = func.Blueprint()


def _base_url(req: func.HttpRequest) -> str:
    """scheme://host of the request, so status URLs point back at this API."""
    url = req.url
    return url[: url.index("/api/")] if "/api/" in url else url.rstrip("/")


def _submit(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    key = req.headers.get(builds.IDEMPOTENCY_HEADER)
    rt = get_runtime()
    body = manifests.rebuild_body(rt, req.get_body(), caller)  # {"from_manifest": ...}
    if isinstance(body, ApiResponse):
        return body
    return builds.submit(rt, body, _base_url(req), caller, key)


def _list(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    return builds.list_builds(get_runtime(), dict(req.params), caller)


def _get(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    return builds.get(get_runtime(), req.route_params["id"], caller)


def _cancel(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    return builds.cancel(get_runtime(), req.route_params["id"], _base_url(req), caller)


def _manifest(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    return manifests.get_manifest(get_runtime(), req.route_params["sha256"], caller)


def _sbom(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    return manifests.get_sbom(get_runtime(), req.route_params["sha256"], caller)


def _diff(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    params = req.route_params
    return manifests.diff_manifests(get_runtime(), params["a"], params["b"], caller)


user_and_automation_route(bp, "submit_build", "builds", ["POST"], _submit)
user_and_automation_route(bp, "list_builds", "builds", ["GET"], _list)
user_and_automation_route(bp, "get_build", "builds/{id}", ["GET"], _get)
user_and_automation_route(bp, "cancel_build", "builds/{id}/cancel", ["POST"], _cancel)
user_and_automation_route(bp, "get_manifest", "manifests/{sha256}", ["GET"], _manifest)
user_and_automation_route(bp, "get_sbom", "manifests/{sha256}/sbom", ["GET"], _sbom)
user_and_automation_route(bp, "diff_manifests", "manifests/{a}/diff/{b}", ["GET"], _diff)


@bp.function_name("openapi")
@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return reply(ApiResponse(200, openapi_document()))
