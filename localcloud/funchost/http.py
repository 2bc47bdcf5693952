"""HTTP triggers under /<routePrefix>/<route> and the host's admin endpoints, served by aiohttp."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from aiohttp import web
from azure.functions.queue import QueueMessage as TriggerMessage

from localcloud.funchost.appindex import FunctionSpec
from localcloud.funchost.easyauth import EasyAuth
from localcloud.funchost.hostkeys import HostKeys
from localcloud.funchost.invoke import Invoker
from localcloud.funchost.timers import timer_request

log = logging.getLogger("localcloud.funchost")

_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::([^}?]+))?(\?)?\}")
_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "guid": r"[0-9A-Fa-f-]{36}",
    "alpha": "[A-Za-z]+",
}


def compile_route(template: str) -> re.Pattern[str]:
    """A regex for an ASP.NET-style route template (`builds/{id}`, `{id:int}`, `{id?}`, `{*rest}`).

    Matching is case-insensitive, as the Functions host's router is.
    """
    pattern = ""
    pos = 0
    template = template.strip("/")
    for match in _PARAM.finditer(template):
        literal = template[pos : match.start()]
        catch_all, name, constraint, optional = match.groups()
        value = ".*" if catch_all else _CONSTRAINTS.get((constraint or "").lower(), "[^/]+")
        group = f"(?P<{name}>{value})"
        if optional and literal.endswith("/"):
            pattern += re.escape(literal[:-1]) + f"(?:/{group})?"
        else:
            pattern += re.escape(literal) + (f"{group}?" if optional else group)
        pos = match.end()
    pattern += re.escape(template[pos:])
    return re.compile(f"^{pattern}/?$", re.IGNORECASE)


@dataclass(frozen=True)
class _Route:
    spec: FunctionSpec
    pattern: re.Pattern[str]


def to_aiohttp(result: Any) -> web.Response:
    """What a function returned, as the HTTP response the host sends."""
    if isinstance(result, func.HttpResponse):
        headers = {k: v for k, v in result.headers.items() if k.lower() != "content-type"}
        response = web.Response(status=result.status_code, body=result.get_body(), headers=headers)
        content_type = result.headers.get("Content-Type")
        if content_type:
            response.headers["Content-Type"] = content_type
        elif result.mimetype:
            response.content_type = result.mimetype
            response.charset = result.charset
        return response
    if result is None:
        return web.Response(status=204)
    if isinstance(result, bytes | str):
        return web.Response(
            status=200, body=result if isinstance(result, bytes) else result.encode()
        )
    return web.json_response(result)


class HttpFrontend:
    """Routes requests to HTTP-triggered functions and serves /admin/*.

    Every request first passes App Service authentication (`easy_auth`, off unless configured),
    then the host's key check for the route's authorization level (`keys`); /admin/* needs the
    master key, as on Azure.
    """

    def __init__(
        self,
        specs: list[FunctionSpec],
        invoker: Invoker,
        route_prefix: str,
        keys: HostKeys,
        easy_auth: EasyAuth,
    ) -> None:
        self._keys = keys
        self._easy_auth = easy_auth
        self._functions = {s.name.lower(): s for s in specs}
        self._routes = [
            _Route(s, compile_route(s.route or s.name))
            for s in specs
            if s.trigger_type == "httpTrigger"
        ]
        self._invoker = invoker
        self._prefix = f"/{route_prefix}/" if route_prefix else "/"
        self._background: set[asyncio.Task[Any]] = set()

    def application(self) -> web.Application:
        app = web.Application(client_max_size=100 * 1024 * 1024, middlewares=[self._authentication])
        app.router.add_get("/admin/host/status", self._host_status)
        app.router.add_get("/admin/functions", self._list_functions)
        app.router.add_post("/admin/functions/{name}", self._run_function)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    def urls(self, base: str) -> dict[str, str]:
        return {r.spec.name: f"{base}{self._prefix}{r.spec.route}" for r in self._routes}

    @web.middleware
    async def _authentication(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """App Service authentication in front of the host, and the master key for /admin."""
        outcome = self._easy_auth.apply(request.path, request.headers)
        if outcome.status is not None:
            headers = {"Location": outcome.location} if outcome.location else {}
            return web.Response(status=outcome.status, headers=headers)
        request["app_headers"] = outcome.headers
        path = request.path.lower()
        # The status probe stays open, so `localcloud up` can tell the host is running.
        needs_master = path.startswith("/admin/") and path != "/admin/host/status"
        if needs_master and not self._keys.allows("admin", request.headers, request.query):
            return web.Response(status=401)
        result: web.StreamResponse = await handler(request)
        return result

    async def _host_status(self, request: web.Request) -> web.Response:
        return web.json_response({"state": "Running", "version": "localcloud"})

    async def _list_functions(self, request: web.Request) -> web.Response:
        listing = [{"name": s.name, "trigger": s.trigger_type} for s in self._functions.values()]
        return web.json_response(listing)

    async def _run_function(self, request: web.Request) -> web.Response:
        spec = self._functions.get(request.match_info["name"].lower())
        if spec is None:
            return web.Response(status=404)
        if spec.trigger_type == "httpTrigger":
            return web.json_response({"error": "call HTTP functions at their route"}, status=400)
        try:
            payload = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError:
            return web.json_response({"error": "body must be JSON"}, status=400)
        text = str((payload or {}).get("input") or "")
        trigger_value: Any
        if spec.trigger_type == "timerTrigger":
            trigger_value = timer_request(False, None, datetime.now(UTC))
        elif spec.trigger_type == "queueTrigger":
            now = datetime.now(UTC)
            trigger_value = TriggerMessage(
                id=str(uuid.uuid4()), body=text, dequeue_count=1, insertion_time=now
            )
        else:
            return web.json_response({"error": f"cannot run {spec.trigger_type}"}, status=400)
        task = asyncio.create_task(self._run_detached(spec, trigger_value))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return web.Response(status=202)

    async def _run_detached(self, spec: FunctionSpec, value: Any) -> None:
        # The invoker logged any failure; an admin run has no caller to tell.
        with contextlib.suppress(Exception):
            await self._invoker.invoke(spec, value, "admin")

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if not path.lower().startswith(self._prefix.lower()) and path + "/" != self._prefix:
            return web.Response(status=404)
        sub = path[len(self._prefix) :]
        for route in self._routes:
            match = route.pattern.match(sub)
            if match and request.method in route.spec.methods:
                return await self._call(route.spec, request, match)
        return web.Response(status=404)

    async def _call(
        self, spec: FunctionSpec, request: web.Request, match: re.Match[str]
    ) -> web.Response:
        if not self._keys.allows(spec.auth_level, request.headers, request.query):
            return web.Response(status=401)
        params = {k: v for k, v in match.groupdict().items() if v is not None}
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=dict(request.get("app_headers", request.headers)),
            params=dict(request.query),
            route_params=params,
            body=await request.read(),
        )
        try:
            result = await self._invoker.invoke(spec, http_request, "http")
        except Exception:
            return web.Response(status=500)
        return to_aiohttp(result)
