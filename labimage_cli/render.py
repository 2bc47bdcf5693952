"""How builds look on the terminal: rich tables for stages, events, lists, and the final result.

Every function takes the API's JSON (dicts as GET /api/builds/{id} answers them) and returns a
renderable, so the same pictures serve a live display, a snapshot and a recorded test console.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from shared.state.machine import PIPELINE, Stage

# Every stage a build can pass, in order, so the table shows what is still to come.
STAGE_ORDER: tuple[str, ...] = (*(s.value for s in PIPELINE), Stage.CLEANUP.value)
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})

_STATE_STYLE = {
    "pending": "dim",
    "running": "bold yellow",
    "succeeded": "green",
    "passed": "green",
    "failed": "bold red",
    "timed_out": "bold red",
    "cancelled": "magenta",
    "skipped": "dim",
    "queued": "cyan",
}


def parse_time(value: str | None) -> datetime | None:
    """An API timestamp as an aware datetime (naive ones are taken as UTC)."""
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from `start` to `end`, or None when either is missing."""
    begun, ended = parse_time(start), parse_time(end)
    if begun is None or ended is None:
        return None
    return (ended - begun).total_seconds()


def format_duration(seconds: float | None) -> str:
    """'4.2 s', '3 m 05 s', '1 h 02 m'; '-' when unknown."""
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m"


def clock(value: str | None) -> str:
    """HH:MM:SS in the local time zone, '-' when unknown."""
    moment = parse_time(value)
    return moment.astimezone().strftime("%H:%M:%S") if moment else "-"


def styled(state: str) -> Text:
    return Text(state, style=_STATE_STYLE.get(state, ""))


def stage_table(status: dict[str, Any], now: datetime | None = None) -> Table:
    """Stage, state, started, elapsed (running) or duration (finished), attempts, last note."""
    now = now or datetime.now(UTC)
    title = f"build {status.get('id', '?')} · {status.get('name', '')} · {status.get('state', '?')}"
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("stage", "state", "started", "elapsed", "attempts", "last note"):
        # Only the note column gives way in a narrow terminal (its cells are cut, not wrapped,
        # so each stage stays one line and the live table steady; events show notes whole).
        table.add_column(column, no_wrap=column != "last note")
    notes = _last_note_per_stage(status)
    for stage in _stages_in_order(status):
        state = stage.get("state", "pending")
        started = stage.get("started_at")
        finished = stage.get("finished_at")
        ticking = status.get("state") not in TERMINAL_STATES and state == "running"
        if started and not finished and ticking:
            elapsed = seconds_between(started, now.isoformat())
        else:
            elapsed = seconds_between(started, finished)
        attempts = str(stage["attempts"]) if stage.get("attempts") else "-"
        note = stage.get("last_error") or notes.get(stage["name"], "")
        table.add_row(
            stage["name"],
            styled(state),
            clock(started),
            format_duration(elapsed),
            attempts,
            Text(
                note,
                style="red" if stage.get("last_error") else "",
                no_wrap=True,
                overflow="ellipsis",
            ),
        )
    return table


def _stages_in_order(status: dict[str, Any]) -> list[dict[str, Any]]:
    known = {s["name"]: s for s in status.get("stages", [])}
    order = list(STAGE_ORDER) + [name for name in known if name not in STAGE_ORDER]
    if status.get("state") in TERMINAL_STATES:
        order = [name for name in order if name in known]  # stages never reached stay out
    return [known.get(name, {"name": name, "state": "pending"}) for name in order]


def _last_note_per_stage(status: dict[str, Any]) -> dict[str, str]:
    notes: dict[str, str] = {}
    for event in status.get("events", []):
        if event.get("stage"):
            notes[event["stage"]] = event.get("message", "")
    return notes


def event_line(event: dict[str, Any]) -> Text:
    """'12:03:04  install    running the installer' for one event."""
    line = Text(f"{clock(event.get('at'))}  ", style="dim")
    line.append(f"{event.get('stage') or '-':<10}", style="cyan")
    line.append(event.get("message", ""))
    return line


def events_table(events: Iterable[dict[str, Any]]) -> Table:
    table = Table(expand=False)
    table.add_column("time", no_wrap=True)
    table.add_column("stage", no_wrap=True)
    table.add_column("message")
    for event in events:
        table.add_row(clock(event.get("at")), event.get("stage") or "-", event.get("message", ""))
    return table


def print_result(console: Console, status: dict[str, Any]) -> None:
    """Print result_report; lines of text are not wrapped, so ids and commands copy whole."""
    for part in result_report(status):
        console.print(part, soft_wrap=isinstance(part, Text))


def result_report(status: dict[str, Any]) -> list[RenderableType]:
    """The end of a build: outcome, error, image, per-stage times, verification, connection."""
    parts: list[RenderableType] = []
    state = status.get("state", "?")
    total = seconds_between(status.get("created_at"), status.get("updated_at"))
    headline = Text(f"build {status.get('id')} ")
    headline.append(state, style=_STATE_STYLE.get(state, "bold"))
    headline.append(f" after {format_duration(total)}")
    parts.append(headline)
    if status.get("error"):
        parts.append(Text(f"error: {status['error']}", style="bold red"))
    if status.get("image_id"):
        parts.append(Text(f"image: {status['image_id']}"))
    if status.get("gallery_image_version_id"):
        parts.append(Text(f"gallery image version: {status['gallery_image_version_id']}"))
    security = status.get("security")
    if security:
        parts.append(Text(f"security type: {security.get('type')} ({security.get('reason')})"))
    parts.append(stage_times_table(status))
    for report in status.get("verification", []):
        parts.append(verification_table(report))
    connection = status.get("connection")
    if connection:
        parts.append(Text("connect to the kept VM:", style="bold"))
        for label, key in (
            ("log in", "ssh_command"),
            ("tunnel", "tunnel_command"),
            ("jupyter", "jupyter_url"),
        ):
            if connection.get(key):
                parts.append(Text(f"  {label:<8} {connection[key]}"))
    return parts


def stage_times_table(status: dict[str, Any]) -> Table:
    table = Table(title="per-stage times", title_justify="left", expand=False)
    for column in ("stage", "state", "duration", "attempts"):
        table.add_column(column, no_wrap=True, justify="right" if column == "duration" else "left")
    for stage in status.get("stages", []):
        took = seconds_between(stage.get("started_at"), stage.get("finished_at"))
        table.add_row(
            stage["name"], styled(stage["state"]), format_duration(took), str(stage["attempts"])
        )
    return table


def verification_table(report: dict[str, Any]) -> Table:
    jupyter = "Jupyter answered" if report.get("jupyter_ok") else "Jupyter did NOT answer"
    title = f"verification on the {report.get('vm', '?')} VM: {jupyter}"
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("notebook", "status", "time", "error"):
        table.add_column(column, no_wrap=column != "error")
    for notebook in report.get("notebooks", []):
        table.add_row(
            notebook.get("name", "?"),
            styled(notebook.get("status", "?")),
            format_duration(notebook.get("duration_s")),
            notebook.get("error") or "",
        )
    return table


def builds_table(builds: Iterable[dict[str, Any]]) -> Table:
    table = Table(expand=False)
    for column in ("id", "name", "owner", "project", "state", "stage", "created", "updated"):
        table.add_column(column, no_wrap=True)
    for build in builds:
        table.add_row(
            build.get("id", ""),
            build.get("name", ""),
            build.get("owner", ""),
            build.get("project", ""),
            styled(build.get("state", "")),
            build.get("stage") or "-",
            _date_time(build.get("created_at")),
            _date_time(build.get("updated_at")),
        )
    return table


def _date_time(value: str | None) -> str:
    moment = parse_time(value)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment else "-"


def problems_table(problems: Iterable[dict[str, str]]) -> Table:
    """Each problem with its field path ('(request)' for the request as a whole)."""
    table = Table(expand=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("problem")
    for problem in problems:
        table.add_row(problem.get("field") or "(request)", problem.get("message", ""))
    return table


def generic(value: Any) -> RenderableType:
    """A JSON document of unknown shape: lists of objects become tables, the rest key: value."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return _rows_table(value)
    if not isinstance(value, dict):
        return Text(json.dumps(value, indent=2))
    parts: list[RenderableType] = []
    for key, item in value.items():
        if isinstance(item, list) and item and all(isinstance(v, dict) for v in item):
            table = _rows_table(item)
            table.title = key
            table.title_justify = "left"
            parts.append(table)
        elif isinstance(item, dict | list):
            parts.append(Text(f"{key}: {json.dumps(item)}"))
        else:
            parts.append(Text(f"{key}: {item}"))
    return Group(*parts)


def _rows_table(rows: list[dict[str, Any]]) -> Table:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    table = Table(expand=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        cells = [row.get(c) for c in columns]
        table.add_row(*("" if c is None else _cell(c) for c in cells))
    return table


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return json.dumps(value) if isinstance(value, dict | list) else str(value)
