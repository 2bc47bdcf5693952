"""HTTP: submit, read, list and cancel builds; the OpenAPI document."""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from functions.http import reply
from shared.api import builds
from shared.api.builds import ApiResponse
from shared.openapi import openapi_document
from shared.runtime import get_runtime

logger = logging.getLogger(__name__)

bp = func.Blueprint()


def _base_url(req: func.HttpRequest) -> str:
    """scheme://host of the request, so status URLs point back at this API."""
    url = req.url
    return url[: url.index("/api/")] if "/api/" in url else url.rstrip("/")


@bp.function_name("submit_build")
@bp.route(route="builds", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def submit_build(req: func.HttpRequest) -> func.HttpResponse:
    return reply(builds.submit(get_runtime(), req.get_body(), _base_url(req)))


@bp.function_name("list_builds")
@bp.route(route="builds", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_builds(req: func.HttpRequest) -> func.HttpResponse:
    query: dict[str, Any] = dict(req.params)
    return reply(builds.list_builds(get_runtime(), query))


@bp.function_name("get_build")
@bp.route(route="builds/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_build(req: func.HttpRequest) -> func.HttpResponse:
    return reply(builds.get(get_runtime(), req.route_params["id"]))


@bp.function_name("cancel_build")
@bp.route(route="builds/{id}/cancel", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def cancel_build(req: func.HttpRequest) -> func.HttpResponse:
    return reply(builds.cancel(get_runtime(), req.route_params["id"], _base_url(req)))


@bp.function_name("openapi")
@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return reply(ApiResponse(200, openapi_document()))
