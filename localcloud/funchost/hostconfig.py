"""host.json and local.settings.json, read the way the Functions host reads them."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The real host's defaults for extension bundle 4 (Storage extension 5.x).
DEFAULT_BATCH_SIZE = 16
DEFAULT_MAX_DEQUEUE_COUNT = 5
DEFAULT_MAX_POLLING_INTERVAL = 60.0
DEFAULT_VISIBILITY_TIMEOUT = 0.0
MIN_POLLING_INTERVAL = 0.1  # the host's QueuePollingIntervals.Minimum
MAX_BATCH_SIZE = 32  # Azure Storage returns at most 32 messages per receive


@dataclass(frozen=True)
class QueueOptions:
    batch_size: int = DEFAULT_BATCH_SIZE
    new_batch_threshold: int = DEFAULT_BATCH_SIZE // 2
    max_polling_interval: float = DEFAULT_MAX_POLLING_INTERVAL  # seconds
    visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT  # seconds; retry delay after failure
    max_dequeue_count: int = DEFAULT_MAX_DEQUEUE_COUNT
    message_encoding: str = "base64"  # "base64" or "none"

    @property
    def max_concurrency(self) -> int:
        """Messages of one queue in flight at once, as the real host bounds it."""
        return self.batch_size + self.new_batch_threshold


@dataclass(frozen=True)
class HostConfig:
    queues: QueueOptions
    route_prefix: str = "api"


_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


def parse_timespan(value: str | int | float) -> float:
    """Seconds of a .NET TimeSpan string ("00:00:02", "1.00:00:00") as host.json writes them."""
    if isinstance(value, int | float):
        return float(value)
    match = _TIMESPAN.match(value.strip())
    if not match:
        raise ValueError(f"not a TimeSpan (expected hh:mm:ss): {value!r}")
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _queue_options(raw: dict[str, Any]) -> QueueOptions:
    batch_size = int(raw.get("batchSize", DEFAULT_BATCH_SIZE))
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"host.json queues.batchSize must be 1..{MAX_BATCH_SIZE}: {batch_size}")
    # Extension 5.x: N * batchSize / 2 where N is the number of vCPUs.
    default_threshold = (os.cpu_count() or 1) * batch_size // 2
    encoding = str(raw.get("messageEncoding", "base64")).lower()
    if encoding not in ("base64", "none"):
        raise ValueError(f"host.json queues.messageEncoding must be base64 or none: {encoding}")
    max_polling = parse_timespan(raw.get("maxPollingInterval", DEFAULT_MAX_POLLING_INTERVAL))
    return QueueOptions(
        batch_size=batch_size,
        new_batch_threshold=int(raw.get("newBatchThreshold", default_threshold)),
        max_polling_interval=max(max_polling, MIN_POLLING_INTERVAL),
        visibility_timeout=parse_timespan(raw.get("visibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT)),
        max_dequeue_count=int(raw.get("maxDequeueCount", DEFAULT_MAX_DEQUEUE_COUNT)),
        message_encoding=encoding,
    )


def load_host_config(app_dir: Path) -> HostConfig:
    """Read `host.json` in the app folder; a missing file or section means the host defaults."""
    path = app_dir / "host.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    extensions = data.get("extensions") or {}
    http = extensions.get("http") or {}
    prefix = str(http.get("routePrefix", "api")).strip("/")
    return HostConfig(queues=_queue_options(extensions.get("queues") or {}), route_prefix=prefix)


def load_local_settings(app_dir: Path) -> None:
    """Put local.settings.json `Values` into the environment, as `func start` does.

    Variables already set in the environment win, so a caller (such as `localcloud up`) can
    override any value in the file.
    """
    path = app_dir / "local.settings.json"
    if not path.exists():
        return
    values = json.loads(path.read_text()).get("Values") or {}
    for name, value in values.items():
        os.environ.setdefault(name, str(value))


_SETTING_REF = re.compile(r"%([^%]+)%")


def resolve_setting_refs(value: str) -> str:
    """Replace every `%NAME%` by the app setting NAME, as binding expressions are resolved."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise LookupError(
                f"'%{name}%' does not resolve to a value: app setting {name} is not set"
            )
        return os.environ[name]

    return _SETTING_REF.sub(lookup, value)
