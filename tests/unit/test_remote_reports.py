"""The guest's notebook report is validated when it arrives, and the status view never fails on
what a build record holds."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.api.views import build_status
from shared.remote.reports import BadGuestReport, notebook_entries, parse_notebook_report
from shared.state.record import Build, BuildState

GOOD = {
    "notebooks": {
        "/datadrive/notebooks/a.ipynb": {"status": "ok", "duration_s": 1.5},
        "/datadrive/notebooks/b.ipynb": {
            "status": "failed",
            "cell_index": 3,
            "ename": "ValueError",
            "evalue": "boom",
            "duration_s": 0.2,
        },
    },
    "passed": 1,
    "failed": 1,
}


def test_the_scripts_report_becomes_the_stored_entries() -> None:
    entries = notebook_entries(parse_notebook_report(json.dumps(GOOD)))
    assert [(e["name"], e["status"], e["cell"]) for e in entries] == [
        ("/datadrive/notebooks/a.ipynb", "ok", None),
        ("/datadrive/notebooks/b.ipynb", "failed", 3),
    ]


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"notebooks": {"a": {"status": "ok", "duration_s": -1}}}),
        json.dumps({"notebooks": {"a": {"status": "passed"}}}),
        json.dumps({"notebooks": {"a": {"status": "ok", "evalue": "x" * 5000}}}),
        json.dumps({"notebooks": {"": {"status": "ok"}}}),
        json.dumps({"notebooks": ["a"]}),
        '{"notebooks": {"a": {"status": "ok", "duration_s": NaN}}}',
        "[" * 10_000,
        "not json",
    ],
)
def test_a_report_the_script_would_not_write_is_refused(text: str) -> None:
    with pytest.raises(BadGuestReport):
        parse_notebook_report(text)


def test_the_status_of_a_build_holding_an_insane_stored_report_is_still_shown() -> None:
    now = datetime.now(UTC)
    build = Build(
        id="bweird00001",
        request={"name": "x"},
        state=BuildState.SUCCEEDED,
        created_at=now,
        outputs={
            "verification": {
                "jupyter": "answered",
                "notebooks": [
                    {"name": "a.ipynb", "status": "ok", "duration_s": -1},
                    {"name": "b.ipynb", "status": "ok", "duration_s": float("inf")},
                    {"name": "c.ipynb", "status": "ok", "duration_s": "soon"},
                ],
            }
        },
    )
    status = build_status(build, now)
    assert [nb.duration_s for nb in status.verification[0].notebooks] == [None, None, None]
