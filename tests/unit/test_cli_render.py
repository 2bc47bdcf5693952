"""What a person sees of a build: the stage table, events and the final report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console, RenderableType

from labimage_cli.render import (
    event_line,
    format_duration,
    generic,
    print_result,
    problems_table,
    result_report,
    stage_table,
)

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def text(renderable: RenderableType | list[RenderableType]) -> str:
    console = Console(record=True, width=200, force_terminal=False)
    for part in renderable if isinstance(renderable, list) else [renderable]:
        console.print(part)
    return console.export_text()


def running_build() -> dict[str, Any]:
    return {
        "id": "b123456789",
        "name": "ooi-jupyter",
        "state": "running",
        "stage": "install",
        "created_at": at(0),
        "updated_at": at(40),
        "stages": [
            {
                "name": "provision",
                "state": "succeeded",
                "started_at": at(0),
                "finished_at": at(21.5),
                "attempts": 9,
                "last_error": None,
            },
            {
                "name": "mount",
                "state": "succeeded",
                "started_at": at(22),
                "finished_at": at(25),
                "attempts": 1,
                "last_error": None,
            },
            {
                "name": "install",
                "state": "running",
                "started_at": at(25),
                "finished_at": None,
                "attempts": 3,
                "last_error": "ssh: connection reset",
            },
        ],
        "events": [
            {"at": at(1), "stage": "provision", "message": "creating VM vm-b123456789"},
            {"at": at(25), "stage": "install", "message": "installing Python 3.11 with uv"},
        ],
        "verification": [],
    }


def test_stage_table_lists_every_stage_with_state_elapsed_attempts_and_last_note() -> None:
    shown = text(stage_table(running_build(), now=T0 + timedelta(seconds=95)))
    lines = {line.split()[1]: line for line in shown.splitlines() if line.startswith("│")}
    assert "21.5 s" in lines["provision"] and "succeeded" in lines["provision"]
    assert "creating VM vm-b123456789" in lines["provision"]  # the stage's last event
    assert "1 m 10 s" in lines["install"]  # still running: elapsed since it started
    assert "ssh: connection reset" in lines["install"]  # a last error wins over the event
    for later in ("verify", "capture", "relaunch", "cleanup"):
        assert "pending" in lines[later]


def test_finished_build_shows_only_the_stages_it_reached() -> None:
    build = running_build() | {"state": "failed"}
    shown = text(stage_table(build))
    assert "install" in shown and "verify" not in shown and "pending" not in shown


def test_result_of_a_succeeded_build_names_image_reports_times_and_connection() -> None:
    build = running_build() | {
        "state": "succeeded",
        "updated_at": at(81),
        "image_id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/images/img-1",
        "verification": [
            {
                "vm": "build",
                "jupyter_ok": True,
                "notebooks": [
                    {"name": "notebooks/ctd.ipynb", "status": "passed", "duration_s": 3.25},
                ],
            },
            {
                "vm": "relaunch",
                "jupyter_ok": False,
                "notebooks": [
                    {
                        "name": "notebooks/ctd.ipynb",
                        "status": "failed",
                        "duration_s": 1.0,
                        "error": "KeyError: 'temp'",
                    },
                ],
            },
        ],
        "connection": {
            "ssh_command": "ssh -i key azureuser@10.0.0.4",
            "tunnel_command": "ssh -i key -N -L 7005:localhost:8889 azureuser@10.0.0.4",
            "jupyter_url": "http://localhost:7005/lab",
        },
    }
    shown = text(result_report(build))
    assert "build b123456789 succeeded after 1 m 21 s" in shown
    assert "images/img-1" in shown
    assert "verification on the build VM: Jupyter answered" in shown
    assert "verification on the relaunch VM: Jupyter did NOT answer" in shown
    assert "KeyError: 'temp'" in shown and "3.2 s" in shown
    assert "ssh -i key -N -L 7005:localhost:8889 azureuser@10.0.0.4" in shown
    assert "per-stage times" in shown and "21.5 s" in shown


def test_result_of_a_failed_build_shows_the_error() -> None:
    build = running_build() | {"state": "failed", "error": "install failed: uv exited 2"}
    shown = text(result_report(build))
    assert "build b123456789 failed" in shown
    assert "error: install failed: uv exited 2" in shown


def test_event_line_and_problems_and_durations() -> None:
    line = event_line({"at": at(0), "stage": "mount", "message": "formatted /dev/sdc"}).plain
    assert line.split()[1:] == ["mount", "formatted", "/dev/sdc"]
    shown = text(
        problems_table(
            [
                {"field": "data[0].destination", "message": "not absolute"},
                {"field": "", "message": "not JSON"},
            ]
        )
    )
    assert "data[0].destination" in shown and "(request)" in shown
    assert [format_duration(s) for s in (None, 4.24, 65, 3725)] == [
        "-",
        "4.2 s",
        "1 m 05 s",
        "1 h 02 m",
    ]


def test_documents_of_unknown_shape_become_tables() -> None:
    shown = text(
        generic(
            {
                "from": "2026-03-01",
                "by_owner": [{"owner": "alice", "spend": 12.5}, {"owner": "bob", "saving": 3.0}],
            }
        )
    )
    assert "from: 2026-03-01" in shown and "by_owner" in shown
    assert "alice" in shown and "12.50" in shown and "saving" in shown


def test_ids_and_commands_stay_on_one_line_in_a_narrow_terminal() -> None:
    image = (
        "/subscriptions/0000/resourceGroups/labimage-builds/providers/Microsoft.Compute/images/x"
    )
    tunnel = "ssh -i /keys/b123456789 -N -L 7005:localhost:8889 azureuser@10.213.0.9"
    build = running_build() | {
        "state": "succeeded",
        "image_id": image,
        "connection": {"ssh_command": "ssh", "tunnel_command": tunnel, "jupyter_url": "u"},
    }
    console = Console(record=True, width=50, force_terminal=False)
    print_result(console, build)
    lines = console.export_text().splitlines()
    assert f"image: {image}" in lines
    assert any(line.endswith(tunnel) for line in lines)
    narrow = Console(record=True, width=50, force_terminal=False)
    narrow.print(stage_table(running_build()))
    rows = [line for line in narrow.export_text().splitlines() if line.startswith("│")]
    assert len(rows) == 7  # one line per stage: long notes are cut, events show them whole


def test_the_result_says_which_security_type_was_used_and_why() -> None:
    build = running_build() | {
        "state": "succeeded",
        "security": {"type": "TrustedLaunch", "reason": "the default for a gallery build"},
    }
    console = Console(record=True, width=120, force_terminal=False)
    print_result(console, build)
    assert "security type: TrustedLaunch (the default for a gallery build)" in console.export_text()
