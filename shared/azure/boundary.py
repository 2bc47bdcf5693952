"""Maps Resource Manager failures to the two error kinds, in one place."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from shared import telemetry
from shared.errors import PermanentError, TemporaryError

T = TypeVar("T")

TRANSIENT_STATUS = {408, 409, 429, 500, 502, 503, 504}
# 409 is transient only for these codes (another operation is still running on the resource).
TRANSIENT_CONFLICTS = {
    "Conflict",
    "OperationNotAllowed_Busy",
    "RetryableError",
    "AnotherOperationInProgress",
}
# An operation that ended Failed with one of these codes failed inside the platform, not
# because of the request: trying again is what Azure's messages ask for ("Please retry").
# azure-core raises such an end as an HttpResponseError carrying the status poll's 200.
TRANSIENT_OPERATION_CODES = {
    "InternalExecutionError",
    "InternalServerError",
    "InternalOperationError",
    "ServiceUnavailable",
    "RetryableError",
}


def describe(exc: HttpResponseError) -> str:
    code = getattr(exc.error, "code", None) if exc.error else None
    message = getattr(exc.error, "message", None) if exc.error else None
    return f"{code or exc.status_code}: {message or exc.reason or exc}"


@contextmanager
def arm_call(what: str) -> Iterator[None]:
    """Run Resource Manager calls, turning their failures into Temporary or Permanent errors.

    Each block is one telemetry span, `arm <what>`."""
    with telemetry.span(f"arm {what}", {"labimage.arm.operation": what}), _mapped_errors(what):
        yield


@contextmanager
def _mapped_errors(what: str) -> Iterator[None]:
    try:
        yield
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise TemporaryError(
            f"{what}: Resource Manager unreachable ({type(exc).__name__})"
        ) from exc
    except ClientAuthenticationError as exc:
        raise TemporaryError(f"{what}: could not get a token ({exc.message})", 30) from exc
    except ResourceNotFoundError:
        raise
    except HttpResponseError as exc:
        code = getattr(exc.error, "code", None) if exc.error else None
        retry_after = _retry_after(exc)
        if exc.status_code in TRANSIENT_STATUS and (
            exc.status_code != 409 or code in TRANSIENT_CONFLICTS
        ):
            raise TemporaryError(f"{what}: {describe(exc)}", retry_after) from exc
        if code in TRANSIENT_OPERATION_CODES:
            raise TemporaryError(f"{what}: {describe(exc)}", retry_after) from exc
        raise PermanentError(f"{what}: {describe(exc)}") from exc


def _retry_after(exc: HttpResponseError) -> float:
    headers = getattr(exc.response, "headers", None) or {}
    header = headers.get("Retry-After")
    try:
        return max(1.0, float(header)) if header else 10.0
    except ValueError:
        return 10.0


def get_or_none(what: str, getter: Callable[[], T]) -> T | None:
    """A GET that answers None for a resource that does not exist."""
    with arm_call(what):
        try:
            return getter()
        except ResourceNotFoundError:
            return None
