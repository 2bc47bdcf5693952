"""HTTP: submit, read, list and cancel builds; list, show and delete images; read build logs
(each at a user and an automation route, see functions/http.py); the OpenAPI document."""

from __future__ import annotations

import logging

import azure.functions as func

from functions.http import reply, user_and_automation_route
from shared.api import build_logs, builds, images, manifests
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


def _list_images(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    return images.list_images(get_runtime(), caller)


def _get_image(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    return images.get_image(get_runtime(), req.route_params["name"], caller)


def _delete_image(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    return images.delete_image(get_runtime(), req.route_params["name"], caller)


def _list_logs(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    return build_logs.list_logs(get_runtime(), req.route_params["id"], caller)


def _get_log(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    return build_logs.get_log(
        get_runtime(), req.route_params["id"], req.route_params["job"], caller
    )


user_and_automation_route(bp, "submit_build", "builds", ["POST"], _submit)
user_and_automation_route(bp, "list_builds", "builds", ["GET"], _list)
user_and_automation_route(bp, "get_build", "builds/{id}", ["GET"], _get)
user_and_automation_route(bp, "cancel_build", "builds/{id}/cancel", ["POST"], _cancel)
user_and_automation_route(bp, "get_manifest", "manifests/{sha256}", ["GET"], _manifest)
user_and_automation_route(bp, "get_sbom", "manifests/{sha256}/sbom", ["GET"], _sbom)
user_and_automation_route(bp, "diff_manifests", "manifests/{a}/diff/{b}", ["GET"], _diff)
user_and_automation_route(bp, "list_images", "images", ["GET"], _list_images)
user_and_automation_route(bp, "get_image", "images/{name}", ["GET"], _get_image)
user_and_automation_route(bp, "delete_image", "images/{name}", ["DELETE"], _delete_image)
user_and_automation_route(bp, "list_build_logs", "builds/{id}/logs", ["GET"], _list_logs)
user_and_automation_route(bp, "get_build_log", "builds/{id}/logs/{job}", ["GET"], _get_log)


@bp.function_name("openapi")
@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return reply(ApiResponse(200, openapi_document()))
