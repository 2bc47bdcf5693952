"""How builds look on the terminal: rich tables for stages, events, lists, and the final result.

Every function takes the API's JSON (dicts as GET /api/builds/{id} answers them) and returns a
renderable, so the same pictures serve a live display, a snapshot and a recorded test console.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from labimage_cli.fit import Column, print_rows
from labimage_cli.safe_text import clean_str, plain
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
    return plain(state, _STATE_STYLE.get(str(state), ""))


def stage_table(status: dict[str, Any], now: datetime | None = None) -> Table:
    """Stage, state, started, elapsed (running) or duration (finished), attempts, last note."""
    now = now or datetime.now(UTC)
    title = clean_str(
        f"build {status.get('id', '?')} · {status.get('name', '')} · {status.get('state', '?')}"
    )
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
        shown_note = plain(note, "red" if stage.get("last_error") else "")
        shown_note.no_wrap, shown_note.overflow = True, "ellipsis"
        table.add_row(
            plain(stage["name"]),
            styled(state),
            clock(started),
            format_duration(elapsed),
            attempts,
            shown_note,
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
    line.append(clean_str(f"{event.get('stage') or '-':<10}"), style="cyan")
    line.append(clean_str(str(event.get("message", ""))))
    return line


def print_result(console: Console, status: dict[str, Any]) -> None:
    """Print result_report; lines of text are not wrapped, so ids and commands copy whole."""
    for part in result_report(status):
        console.print(part, soft_wrap=isinstance(part, Text))


def result_report(status: dict[str, Any]) -> list[RenderableType]:
    """The end of a build: outcome, error, image, per-stage times, verification, connection."""
    parts: list[RenderableType] = []
    state = status.get("state", "?")
    total = seconds_between(status.get("created_at"), status.get("updated_at"))
    headline = plain(f"build {status.get('id')} ")
    headline.append(clean_str(str(state)), style=_STATE_STYLE.get(state, "bold"))
    headline.append(f" after {format_duration(total)}")
    parts.append(headline)
    if status.get("error"):
        parts.append(plain(f"error: {status['error']}", "bold red"))
    if status.get("image_id"):
        parts.append(plain(f"image: {status['image_id']}"))
    if status.get("gallery_image_version_id"):
        parts.append(plain(f"gallery image version: {status['gallery_image_version_id']}"))
    security = status.get("security")
    if security:
        parts.append(plain(f"security type: {security.get('type')} ({security.get('reason')})"))
    parts.append(stage_times_table(status))
    for report in status.get("verification", []):
        parts.append(verification_table(report))
    connection = status.get("connection")
    if connection:
        parts.append(Text("connect to the kept VM:", style="bold"))
        if connection.get("known_hosts_line") and connection.get("known_hosts_file"):
            parts.append(
                plain(
                    f"  host key save this line in {connection['known_hosts_file']}: "
                    f"{connection['known_hosts_line']}"
                )
            )
        for label, key in (
            ("key", "key"),
            ("log in", "ssh_command"),
            ("tunnel", "tunnel_command"),
            ("jupyter", "jupyter_url"),
        ):
            if connection.get(key):
                parts.append(plain(f"  {label:<8} {connection[key]}"))
    return parts


def stage_times_table(status: dict[str, Any]) -> Table:
    table = Table(title="per-stage times", title_justify="left", expand=False)
    for column in ("stage", "state", "duration", "attempts"):
        table.add_column(column, no_wrap=True, justify="right" if column == "duration" else "left")
    for stage in status.get("stages", []):
        took = seconds_between(stage.get("started_at"), stage.get("finished_at"))
        table.add_row(
            plain(stage["name"]),
            styled(stage["state"]),
            format_duration(took),
            plain(stage.get("attempts")),
        )
    return table


def verification_table(report: dict[str, Any]) -> Table:
    jupyter = "Jupyter answered" if report.get("jupyter_ok") else "Jupyter did NOT answer"
    title = clean_str(f"verification on the {report.get('vm', '?')} VM: {jupyter}")
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("notebook", "status", "time", "error"):
        table.add_column(column, no_wrap=column != "error")
    for notebook in report.get("notebooks", []):
        table.add_row(
            plain(notebook.get("name", "?")),
            styled(notebook.get("status", "?")),
            format_duration(_number(notebook.get("duration_s"))),
            plain(notebook.get("error") or ""),
        )
    return table


BUILD_COLUMNS = (
    Column("id", keep=True),
    Column("name"),
    Column("owner"),
    Column("project"),
    Column("state", keep=True),
    Column("stage"),
    Column("created"),
    Column("updated"),
)
# Dropped in this order when the terminal is too narrow; id and state always stay whole.
BUILD_DROP_ORDER = ("project", "updated", "owner", "stage", "created", "name")


def print_builds(
    console: Console,
    builds: Iterable[dict[str, Any]],
    wide: bool = False,
    now: datetime | None = None,
) -> None:
    """Builds as a table that fits the terminal (full ids and states), or plain text to a pipe."""
    today = (now or datetime.now(UTC)).astimezone().date()
    rows = [
        [
            str(build.get("id", "")),
            str(build.get("name", "")),
            str(build.get("owner", "")),
            str(build.get("project", "")),
            str(build.get("state", "")),
            str(build.get("stage") or "-"),
            _date_time(build.get("created_at"), today),
            _date_time(build.get("updated_at"), today),
        ]
        for build in builds
    ]
    print_rows(
        console,
        BUILD_COLUMNS,
        rows,
        drop_order=BUILD_DROP_ORDER,
        wide=wide,
        styles={"state": _STATE_STYLE},
    )


EVENT_COLUMNS = (
    Column("time", keep=True),
    Column("stage", keep=True),
    Column("message", wraps=True),
)


def print_events(console: Console, events: Iterable[dict[str, Any]], wide: bool = False) -> None:
    rows = [
        [clock(e.get("at")), str(e.get("stage") or "-"), str(e.get("message", ""))] for e in events
    ]
    print_rows(console, EVENT_COLUMNS, rows, wide=wide)


def _date_time(value: str | None, today: Any = None) -> str:
    """'HH:MM' for today, 'YYYY-MM-DD HH:MM' otherwise, in the local time zone."""
    moment = parse_time(value)
    if not moment:
        return "-"
    local = moment.astimezone()
    return local.strftime("%H:%M") if local.date() == today else local.strftime("%Y-%m-%d %H:%M")


def problems_table(problems: Iterable[dict[str, str]]) -> Table:
    """Each problem with its field path ('(request)' for the request as a whole)."""
    table = Table(expand=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("problem")
    for problem in problems:
        table.add_row(plain(problem.get("field") or "(request)"), plain(problem.get("message")))
    return table


def generic(value: Any) -> RenderableType:
    """A JSON document of unknown shape: lists of objects become tables, the rest key: value."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return _rows_table(value)
    if not isinstance(value, dict):
        return plain(json.dumps(value, indent=2))
    parts: list[RenderableType] = []
    for key, item in value.items():
        if isinstance(item, list) and item and all(isinstance(v, dict) for v in item):
            table = _rows_table(item)
            table.title = clean_str(str(key))
            table.title_justify = "left"
            parts.append(table)
        elif isinstance(item, dict | list):
            parts.append(plain(f"{key}: {json.dumps(item)}"))
        else:
            parts.append(plain(f"{key}: {item}"))
    return Group(*parts)


def _rows_table(rows: list[dict[str, Any]]) -> Table:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    table = Table(expand=False)
    for column in columns:
        table.add_column(plain(column))
    for row in rows:
        cells = [row.get(c) for c in columns]
        table.add_row(*(plain("" if c is None else _cell(c)) for c in cells))
    return table


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None
