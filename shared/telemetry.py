"""Application Insights telemetry through OpenTelemetry: spans, metrics and logs, never secrets.

`configure()` sets up the Azure Monitor exporters once per process when
`APPLICATIONINSIGHTS_CONNECTION_STRING` is set; without it every helper here is a no-op and no
OpenTelemetry module is even imported, so importing this module is cheap and needs no network.

What is exported:
- one span per stage invocation (`stage <name>`, a request in Application Insights) with
  `labimage.build_id`, `labimage.stage`, `labimage.attempt`, `labimage.vm_name`,
  `labimage.outcome` (and `labimage.stage_duration_s` when the stage ended);
- a span around each Resource Manager call (`arm <what>`) and each SSH command or upload
  (`ssh <what>`), as dependencies;
- metrics `labimage.stage.duration` (s), `labimage.builds` (by outcome),
  `labimage.vms.stopped`, `labimage.saving.estimated` (USD) and `labimage.hours.saved` (h),
  each by rule;
- log records, each with `labimage.build_id` while a stage runs.

Every string that leaves through here passes `scrub`, which removes SAS signatures, private
key blocks and the managed-identity header, whatever a message happens to contain.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
# A local copy of every span's timing (JSON lines), for bench/critical_path.py on localcloud.
SPANS_FILE_SETTING = "LABIMAGE_SPANS_FILE"
TRACER_NAME = "labimage"
PREFIX = "labimage."

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_state: dict[str, Any] = {"configured": False, "enabled": False}
_build_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "labimage_build_id", default=None
)

# Query-string secrets: SAS signatures, function keys (code=), Jupyter tokens, also when the
# URL was percent-encoded once (sig%3D...) as it is inside another URL.
_QUERY_SECRET = re.compile(
    r"(?i)(?:\b|(?<=%3F)|(?<=%26))(sig|signature|code|token|access_token)(=|%3D)[^&\s\"'<>]+"
)
# Credentials in a URL's user part: https://user:password@host, https://token@host.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@'\"<>]+@")
_BEARER = re.compile(r"(?i)\b(bearer|token)(\s+)[A-Za-z0-9\-._~+/]{16,}=*")
_FUNCTION_KEY_HEADER = re.compile(r"(?i)\b(x-functions-key[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+")
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)", re.S
)
_ACCOUNT_KEY = re.compile(r"(?i)\b(AccountKey|SharedAccessSignature)=[^;\s\"']+")


def scrub(text: str) -> str:
    """`text` without SAS signatures, function keys, bearer and Jupyter tokens, account keys,
    private keys or the identity header."""
    text = _QUERY_SECRET.sub(r"\1\2REDACTED", text)
    text = _BEARER.sub(r"\1\2REDACTED", text)
    text = _URL_USERINFO.sub(r"\1REDACTED@", text)
    text = _FUNCTION_KEY_HEADER.sub(r"\1REDACTED", text)
    text = _ACCOUNT_KEY.sub(r"\1=REDACTED", text)
    text = _PRIVATE_KEY.sub("[private key redacted]", text)
    header = os.environ.get("IDENTITY_HEADER", "")
    if len(header) >= 8:  # a short value would redact ordinary words
        text = text.replace(header, "REDACTED")
    return text


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, bool | int | float):
        return value
    return scrub(str(value))


class BuildIdFilter(logging.Filter):
    """On the exporting handler: stamps `labimage.build_id` on records while a stage runs,
    scrubs the message, and leaves the Azure SDKs' INFO chatter out."""

    def filter(self, record: logging.LogRecord) -> bool:
        # The SDKs' own chatter (every HTTP request at INFO, the exporter's retries) stays local.
        if record.name.startswith("azure.") and record.levelno < logging.WARNING:
            return False
        build_id = _build_id.get()
        if build_id:
            setattr(record, PREFIX + "build_id", build_id)
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure() -> bool:
    """Set up export to Application Insights once per process. False, and nothing set up,
    when the connection string is not set. Never raises: telemetry must not stop a build."""
    with _lock:
        if _state["configured"]:
            return bool(_state["enabled"])
        _state["configured"] = True
        connection = os.environ.get(CONNECTION_SETTING, "").strip()
        if not connection:
            return False
        try:
            _configure_azure_monitor(connection)
        except Exception:  # a broken exporter must not break the controller
            logger.exception("Application Insights telemetry could not be set up; running without")
            return False
        _state["enabled"] = True
        return True


def _configure_azure_monitor(connection: str) -> None:
    # Azure Functions is App Service: the VM detector would only wait on an address
    # (the instance metadata service) that does not answer there.
    os.environ.setdefault("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "azure_app_service")
    os.environ.setdefault("OTEL_SERVICE_NAME", "labimage")
    # Builds are few and each span matters (the default rate limiter drops the first ones).
    os.environ.setdefault("OTEL_TRACES_SAMPLER", "always_on")
    from azure.monitor.opentelemetry import configure_azure_monitor
    from opentelemetry import metrics, trace

    root = logging.getLogger()
    before = set(root.handlers)
    configure_azure_monitor(
        connection_string=connection,
        logger_name="",
        enable_live_metrics=False,
        enable_performance_counters=False,
        # Our own spans cover Resource Manager and SSH; the SDK's HTTP-level spans would also
        # trace every queue poll of a host that runs in this process (localcloud).
        instrumentation_options={
            name: {"enabled": False}
            for name in (
                "azure_sdk",
                "django",
                "fastapi",
                "flask",
                "psycopg2",
                "requests",
                "urllib",
                "urllib3",
            )
        },
    )
    for handler in set(root.handlers) - before:
        handler.addFilter(BuildIdFilter())
    tracer = trace.get_tracer(TRACER_NAME)
    meter = metrics.get_meter(TRACER_NAME)
    _state["tracer"] = tracer
    _state["stage_duration"] = meter.create_histogram(
        "labimage.stage.duration", unit="s", description="time from a stage's start to its end"
    )
    _state["builds"] = meter.create_counter(
        "labimage.builds", description="builds that ended, by outcome"
    )
    _state["vms_stopped"] = meter.create_counter(
        "labimage.vms.stopped", description="VMs deallocated by a cost rule, by rule"
    )
    _state["saving"] = meter.create_counter(
        "labimage.saving.estimated",
        unit="USD",
        description="estimated compute cost avoided by stopping VMs, by rule",
    )
    _state["hours_saved"] = meter.create_counter(
        "labimage.hours.saved",
        unit="h",
        description="estimated VM hours not run because a cost rule stopped the VM, by rule",
    )


def enabled() -> bool:
    """True once `configure()` set up export."""
    return bool(_state["enabled"])


def flush(timeout_s: float = 10.0) -> None:
    """Export what is buffered now (tests, and before a worker exits)."""
    if not enabled():
        return
    from opentelemetry import metrics, trace

    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
        force_flush = getattr(provider, "force_flush", None)
        if force_flush:
            force_flush(int(timeout_s * 1000))


class SpanHandle:
    """What code inside a span may do: add attributes (scrubbed). A no-op without telemetry."""

    def __init__(self, span: Any = None) -> None:
        self._span = span
        self.attributes: dict[str, Any] = {}

    def set(self, key: str, value: Any) -> None:
        if value is None:
            return
        value = _clean(value)
        self.attributes[key] = value
        if self._span is not None:
            self._span.set_attribute(key, value)


def record_interval(name: str, start: float, end: float, **attributes: Any) -> None:
    """Note in the local spans file (when set) that `name` ran from `start` to `end` (epoch
    seconds), with the build id of the stage running now. Work the controller did not do
    itself (a guest job) is recorded this way. Never raises."""
    path = os.environ.get(SPANS_FILE_SETTING, "").strip()
    if not path:
        return
    line = {
        "name": scrub(name),
        "build_id": _build_id.get(),
        "start": round(start, 4),
        "end": round(end, 4),
        **{key: _clean(value) for key, value in attributes.items() if value is not None},
    }
    try:
        with _lock, open(path, "a", encoding="utf-8") as sink:
            sink.write(json.dumps(line) + "\n")
    except OSError:
        logger.warning("could not append to %s", SPANS_FILE_SETTING)


@contextmanager
def span(
    name: str, attributes: dict[str, Any] | None = None, kind: str = "client"
) -> Iterator[SpanHandle]:
    """A span named `name` (scrubbed) around the block; an escaping exception marks it failed
    with the exception's type and scrubbed message (no traceback, which could hold locals)."""
    start = time.time()
    try:
        with _exported_span(name, attributes, kind) as handle:
            yield handle
    finally:
        record_interval(name, start, time.time())


@contextmanager
def _exported_span(name: str, attributes: dict[str, Any] | None, kind: str) -> Iterator[SpanHandle]:
    if not configure():
        yield SpanHandle()
        return
    from opentelemetry.trace import SpanKind, Status, StatusCode

    kinds = {
        "client": SpanKind.CLIENT,
        "consumer": SpanKind.CONSUMER,
        "internal": SpanKind.INTERNAL,
    }
    tracer = _state["tracer"]
    with tracer.start_as_current_span(
        scrub(name), kind=kinds[kind], record_exception=False, set_status_on_exception=False
    ) as current:
        handle = SpanHandle(current)
        for key, value in (attributes or {}).items():
            handle.set(key, value)
        try:
            yield handle
        except BaseException as exc:
            error = scrub(f"{type(exc).__name__}: {exc}")
            current.set_status(Status(StatusCode.ERROR, error))
            handle.set(PREFIX + "error", error)
            raise


class StageInvocation(SpanHandle):
    """The span of one stage message; the pipeline fills in what it learns as it goes."""

    def __init__(self, handle: SpanHandle) -> None:
        super().__init__(handle._span)
        self.attributes = handle.attributes
        self.outcome = "unknown"

    def build_loaded(self, attempt: int, vm_name: str) -> None:
        self.set(PREFIX + "attempt", attempt)
        self.set(PREFIX + "vm_name", vm_name)

    def stage_ended(self, stage: str, outcome: str, duration_s: float | None) -> None:
        """A stage finished (succeeded, failed or cancelled): its whole duration, once."""
        if duration_s is None:
            return
        self.set(PREFIX + "stage_duration_s", round(duration_s, 3))
        if enabled():
            _state["stage_duration"].record(duration_s, {"stage": stage, "outcome": outcome})


@contextmanager
def stage_invocation(build_id: str, stage: str) -> Iterator[StageInvocation]:
    """The span of one stage message; sets the build id that log records carry meanwhile."""
    token = _build_id.set(build_id)
    started = time.monotonic()
    try:
        attributes = {PREFIX + "build_id": build_id, PREFIX + "stage": stage}
        with span(f"stage {stage}", attributes, kind="consumer") as handle:
            invocation = StageInvocation(handle)
            try:
                yield invocation
            except BaseException:
                invocation.outcome = "crashed"
                raise
            finally:
                invocation.set(PREFIX + "outcome", invocation.outcome)
                if handle._span is not None and invocation.outcome in ("failed", "crashed"):
                    from opentelemetry.trace import Status, StatusCode

                    handle._span.set_status(Status(StatusCode.ERROR, invocation.outcome))
                invocation.set(PREFIX + "invocation_s", round(time.monotonic() - started, 3))
    finally:
        _build_id.reset(token)


def build_ended(outcome: str) -> None:
    """Count a build that reached its final state (succeeded, failed, cancelled)."""
    if enabled():
        _state["builds"].add(1, {"outcome": outcome})


def vm_stopped(
    rule: str, estimated_saving: float | None = None, hours_saved: float | None = None
) -> None:
    """Count a VM a cost rule deallocated, the compute cost that avoids (if known) and the
    VM hours it avoids."""
    if not configure():
        return
    _state["vms_stopped"].add(1, {"rule": rule})
    if estimated_saving:
        _state["saving"].add(estimated_saving, {"rule": rule})
    if hours_saved:
        _state["hours_saved"].add(hours_saved, {"rule": rule})
