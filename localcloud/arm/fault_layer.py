"""The fault plan (localcloud.faults) applied to Resource Manager and Key Vault calls.

Error bodies are ARM's CloudError, `{"error": {"code", "message"}}` (common-types
`CloudError`/`ApiError`, specification/compute/.../common-types/v1/common.json); a 429 carries
`Retry-After` in seconds and the code `SubscriptionRequestsThrottled` (RULES.md section 1.6,
learn.microsoft.com request-limits-and-throttling). An operation made to fail ends with
status `Failed` and the error `InternalExecutionError`, as an Azure-AsyncOperation status
resource does (RULES.md section 2, operations polled through Azure-AsyncOperation).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable

from aiohttp import web

from localcloud.arm.errors import ArmError
from localcloud.arm.ids import parse_id
from localcloud.arm.operations import Operations
from localcloud.faults import Fault, FaultInjector, FaultPlanError, FaultRule, parse_plan

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_SERVER_ERRORS = {
    500: ("InternalServerError", "The server encountered an internal error. Please retry."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry later."),
}


def arm_key(method: str, path: str) -> str | None:
    """The operation key of an ARM call: `<METHOD> <namespace/type>` or `POLL <namespace>`."""
    parts = [p for p in path.split("/") if p]
    low = [p.lower() for p in parts]
    if len(parts) < 2 or low[0] != "subscriptions":
        return None
    if len(parts) == 8 and low[2] == "providers" and low[4] == "locations":
        return f"POLL {parts[3]}"
    last_providers = (
        max(i for i, p in enumerate(low) if p == "providers") if "providers" in low else -1
    )
    if last_providers > 4:  # an extension resource (tags) on a resource
        return f"{method} {'/'.join(parts[last_providers + 1 : last_providers + 3])}"
    if len(parts) >= 5 and low[2] == "providers":
        return f"{method} {parts[3]}/{parts[4]}"
    if low[2] != "resourcegroups" or len(parts) < 7 or low[4] != "providers":
        return f"{method} Microsoft.Resources/{'resourceGroups' if len(parts) > 3 else parts[2]}"
    if len(parts) == 7:
        return f"{method} {parts[5]}/{parts[6]}"
    # The resource the call is about: an action (POST .../start) or a child list names its
    # resource's type, not '<type>/start'.
    ref = parse_id("/" + "/".join(parts[: len(parts) - (len(parts) - 6) % 2]))
    return f"{method} {ref.type_name}" if ref else None


async def with_faults(
    injector: FaultInjector,
    key: str | None,
    request: web.Request,
    handler: Handler,
    operations: Operations | None = None,
) -> web.StreamResponse:
    """Answer `request` through `handler`, unless the plan gives `key` a fault now."""
    fault = injector.decide(key) if key else None
    if fault is None:
        return await handler(request)
    if fault.kind == "delay":
        await asyncio.sleep(fault.seconds)
        return await handler(request)
    if fault.kind == "lro_failed":
        response = await handler(request)
        if operations is not None:
            _fail_operation(response, operations)
        return response
    if fault.when == "after":
        with contextlib.suppress(ArmError, ValueError):  # its answer is lost either way
            await handler(request)
    return _refuse(request, fault)


def _refuse(request: web.Request, fault: Fault) -> web.StreamResponse:
    if fault.kind == "reset":
        reset_connection(request)
        return web.Response(status=500)  # never reaches the client: the connection is gone
    if fault.kind == "throttle":
        error = ArmError(
            429,
            "SubscriptionRequestsThrottled",
            "Number of requests for this subscription exceeded. Please try again after "
            f"'{fault.retry_after}' seconds after additional tokens are available. Refer to "
            "https://aka.ms/arm-throttling for additional information.",
        )
        return error.response({"Retry-After": str(fault.retry_after)})
    code, message = _SERVER_ERRORS[fault.status]
    return ArmError(fault.status, code, message).response()


def reset_connection(request: web.Request) -> None:
    """Close the client's TCP connection with a reset (RST), as a dropped link does."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _fail_operation(response: web.StreamResponse, operations: Operations) -> None:
    url = response.headers.get("Azure-AsyncOperation")
    if not url:
        return
    op_id = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    operations.fail(
        op_id,
        ArmError(500, "InternalExecutionError", "An internal execution error occurred."),
    )


# --- the admin routes (under /localcloud/, behind the emulator's token check) ------------------
async def set_plan(request: web.Request, injector: FaultInjector) -> web.Response:
    """POST /localcloud/faults: the plan from now on (`{}` switches faults off)."""
    try:
        plan = parse_plan(await request.json())
    except (FaultPlanError, ValueError) as error:
        raise web.HTTPBadRequest(text=str(error)) from error
    injector.replace(plan)
    return web.json_response(injector.report())


async def throttle(request: web.Request, injector: FaultInjector) -> web.Response:
    """POST /localcloud/throttle `{"count", "retryAfter"}`: the next `count` calls get 429."""
    spec = await request.json()
    count = int(spec.get("count", 1))
    injector.add(
        FaultRule("*", 1.0, "throttle", retry_after=int(spec.get("retryAfter", 1)), count=count)
    )
    return web.json_response({"throttled": count})


async def delay(request: web.Request, injector: FaultInjector) -> web.Response:
    """POST /localcloud/delay `{"method", "type", "seconds"}`: those calls wait before their
    answer (a slow Resource Manager, as under load); seconds 0 removes the delay."""
    spec = await request.json()
    match = f"{str(spec['method']).upper()} {spec['type']}"
    seconds = float(spec.get("seconds", 0))
    injector.drop(lambda rule: rule.kind == "delay" and rule.match.lower() == match.lower())
    if seconds > 0:
        injector.add(FaultRule(match, 1.0, "delay", seconds=seconds))
    delays = [r for r in injector.plan.rules if r.kind == "delay"]
    return web.json_response({"delays": len(delays)})
