"""Follow one build until it ends: a live stage table, each new event as it arrives."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.live import Live

from labimage_cli.client import ApiClient, ApiUnreachable
from labimage_cli.render import TERMINAL_STATES, event_line, stage_table

# A restarting Functions host or a network blip should not end a watch of a long build.
UNREACHABLE_GRACE_S = 30.0


class WatchTimedOut(Exception):
    """The build had not ended when the watch's time limit passed."""

    def __init__(self, last: dict[str, Any]) -> None:
        super().__init__(f"build {last.get('id')} is still {last.get('state')}")
        self.last = last


def watch_build(
    client: ApiClient,
    build_id: str,
    console: Console,
    *,
    interval_s: float = 1.0,
    timeout_s: float | None = None,
    on_status: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Poll GET /api/builds/{id} until the build is succeeded, failed or cancelled.

    Shows a live stage table (elapsed time ticks between polls) and prints each event once,
    in order. Returns the final status. Raises ApiError (e.g. 404) at once, ApiUnreachable when
    the API has not answered for UNREACHABLE_GRACE_S, and WatchTimedOut after `timeout_s`.
    `on_status` sees every status read (the demo uses it for its own measurements).
    """
    started = time.monotonic()
    status: dict[str, Any] = client.status(build_id)  # a first failure ends the watch at once
    last_shown: tuple[Any, ...] | None = None
    with Live(
        get_renderable=lambda: stage_table(status),
        console=console,
        refresh_per_second=4,
        transient=False,
    ) as live:
        while True:
            for event in new_events(status.get("events", []), last_shown):
                live.console.print(event_line(event), soft_wrap=True)
                last_shown = event_key(event)
            if on_status is not None:
                on_status(status)
            live.refresh()
            if status.get("state") in TERMINAL_STATES:
                return status
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                raise WatchTimedOut(status)
            time.sleep(interval_s)
            status = _read(client, build_id, time.monotonic())


def event_key(event: dict[str, Any]) -> tuple[Any, ...]:
    return (event.get("at"), event.get("stage"), event.get("message"))


def new_events(events: list[dict[str, Any]], last_shown: tuple[Any, ...] | None) -> list[Any]:
    """The events after the last one shown. The API keeps only the latest events, so an index
    into the list is not stable; the last shown event is looked up instead."""
    if last_shown is None:
        return events
    for index in range(len(events) - 1, -1, -1):
        if event_key(events[index]) == last_shown:
            return events[index + 1 :]
    return events  # it was trimmed away: everything now listed is newer


def _read(client: ApiClient, build_id: str, since: float) -> dict[str, Any]:
    """The build's status, retrying while the API is unreachable for less than the grace."""
    while True:
        try:
            status: dict[str, Any] = client.status(build_id)
            return status
        except ApiUnreachable:
            if time.monotonic() - since > UNREACHABLE_GRACE_S:
                raise
            time.sleep(1.0)
