"""Signed one-click links: only the controller's key makes them, each is bound to one
workstation, action and stop, expires at the stop, and the pages escape what they show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest

from shared.workstations.links import LinkRefused, check, links_for, page, sign, url_of

KEY = b"k" * 32
STOP = datetime(2026, 11, 28, 19, 0, tzinfo=UTC)
BEFORE = STOP - timedelta(minutes=30)


def parts(url: str) -> tuple[str, str, dict[str, str]]:
    split = urlsplit(url)
    *_, ws_id, action = split.path.split("/")
    return ws_id, action, dict(parse_qsl(split.query))


def test_a_link_made_with_the_key_checks_until_its_stop() -> None:
    links = links_for(KEY, "https://x.example/", "wabcdefghi", STOP)
    assert set(links) == {"skip_tonight", "delay_1h", "delay_2h"}
    ws_id, action, query = parts(links["delay_1h"])
    assert links["delay_1h"].startswith("https://x.example/api/links/workstations/wabcdefghi/")
    assert check(KEY, ws_id, action, query, BEFORE).action == "delay1"
    with pytest.raises(LinkRefused) as expired:
        check(KEY, ws_id, action, query, STOP)
    assert expired.value.status == 410


@pytest.mark.parametrize(
    "change",
    [
        {"ws_id": "wzzzzzzzzz"},  # another workstation
        {"action": "skip"},  # another action
        {"stop": str(int((STOP + timedelta(hours=24)).timestamp()))},  # another night
        {"key": b"another key"},
    ],
)
def test_a_link_changed_in_any_part_is_refused(change: dict[str, object]) -> None:
    ws_id, action, query = parts(url_of("https://x", sign(KEY, "wabcdefghi", "delay1", STOP)))
    ws_id = str(change.get("ws_id", ws_id))
    action = str(change.get("action", action))
    if "stop" in change:
        query["stop"] = str(change["stop"])
    key = change.get("key", KEY)
    assert isinstance(key, bytes)
    with pytest.raises(LinkRefused) as refused:
        check(key, ws_id, action, query, BEFORE)
    assert refused.value.status == 403


@pytest.mark.parametrize(
    ("ws_id", "action", "query"),
    [
        ("../etc", "skip", {"stop": "1795892400", "sig": "0" * 64}),
        ("wabcdefghi", "delete", {"stop": "1795892400", "sig": "0" * 64}),
        ("wabcdefghi", "skip", {"stop": "tomorrow", "sig": "0" * 64}),
        ("wabcdefghi", "skip", {"stop": "1795892400"}),
        ("wabcdefghi", "skip", {"stop": "1795892400", "sig": "<script>"}),
    ],
)
def test_damaged_links_are_refused_before_anything_is_computed(
    ws_id: str, action: str, query: dict[str, str]
) -> None:
    with pytest.raises(LinkRefused) as refused:
        check(KEY, ws_id, action, query, BEFORE)
    assert refused.value.status == 400


def test_pages_escape_every_text() -> None:
    shown = page("<b>t</b>", "owner <script>alert(1)</script>", confirm=True)
    assert "<script>" not in shown and "<b>" not in shown and "&lt;script&gt;" in shown
    assert '<form method="post"><button' in shown  # posts back to the link itself
    assert "<form" not in page("x", "y")
