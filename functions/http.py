"""What every HTTP trigger shares: the two doors to each handler, and turning an ApiResponse
into the Functions response type.

Each API handler is registered twice (App Service authentication and function keys cannot
guard the same route: with sign-in required App Service answers 401 before the host sees a
key, and a FUNCTION-level route wants a key even from a signed-in user):

- the user route `/api/<route>`: host level ANONYMOUS, behind App Service authentication; the
  caller is the signed-in principal, and nobody signed in gets 401;
- the automation route `/api/automation/<route>`: host level FUNCTION (the host checks the
  key), left out of App Service authentication; a key holder acts as an administrator.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import azure.functions as func

from shared.api.builds import ApiResponse, unauthenticated
from shared.api.caller import Caller, platform_auth_enabled, signed_in_caller

AUTOMATION_PREFIX = "automation"
Handler = Callable[[func.HttpRequest, Caller], ApiResponse]


def reply(response: ApiResponse) -> func.HttpResponse:
    if response.content_type is not None:
        return func.HttpResponse(
            response.body, status_code=response.status, mimetype=response.content_type
        )
    return func.HttpResponse(
        json.dumps(response.body), status_code=response.status, mimetype="application/json"
    )


def user_and_automation_route(
    bp: func.Blueprint, name: str, route: str, methods: list[str], handler: Handler
) -> None:
    """Register `handler` as function `name` at the user route and `automation_<name>` at the
    automation route."""

    def as_user(req: func.HttpRequest) -> func.HttpResponse:
        caller = signed_in_caller(req.headers, platform_auth_enabled())
        return reply(handler(req, caller) if caller else unauthenticated())

    def as_automation(req: func.HttpRequest) -> func.HttpResponse:
        return reply(handler(req, Caller.with_function_key()))

    anonymous, keyed = func.AuthLevel.ANONYMOUS, func.AuthLevel.FUNCTION
    bp.function_name(name)(bp.route(route=route, methods=methods, auth_level=anonymous)(as_user))
    automation_route = f"{AUTOMATION_PREFIX}/{route}"
    bp.function_name(f"automation_{name}")(
        bp.route(route=automation_route, methods=methods, auth_level=keyed)(as_automation)
    )
