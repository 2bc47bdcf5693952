"""Identifiers from outside are checked whole: a regular expression's `$` also matches before a
final newline, so `"replies\n"` passed `^...$` with `.match`. Each check below now refuses it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.api.caller import NAME_CLAIMS, owner_name
from shared.api.queue_submit import usable_reply_queue
from shared.build_logs import valid_entry
from shared.manifest.tags import manifest_digest_from_tags
from shared.workstations.links import LinkRefused, check
from shared.workstations.request import ImageChoice

DIGEST = "a" * 64
IMAGE = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg"
    "/providers/Microsoft.Compute/images/img"
)


def test_a_reply_queue_with_a_trailing_newline_is_not_usable() -> None:
    assert usable_reply_queue("replies")
    assert not usable_reply_queue("replies\n")


def test_a_log_entry_name_with_a_trailing_newline_is_not_valid() -> None:
    assert valid_entry("build.install.log")
    assert not valid_entry("build.install.log\n")


def test_an_owner_name_claim_with_a_trailing_newline_is_not_taken() -> None:
    claim = NAME_CLAIMS[0]
    assert owner_name([(claim, "alice@example.org")], "oid-1") == "alice@example.org"
    assert owner_name([(claim, "alice@example.org\n")], "oid-1") == "oid-1"


def test_a_manifest_tag_with_a_trailing_newline_is_not_a_digest() -> None:
    assert manifest_digest_from_tags({"labimage-manifest": DIGEST}) == DIGEST
    assert manifest_digest_from_tags({"labimage-manifest": DIGEST + "\n"}) is None


def test_a_link_whose_parts_end_in_a_newline_is_refused() -> None:
    query = {"stop": "1800000000", "sig": "0" * 64}
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for ws_id, q in (("wabcdefghi\n", query), ("wabcdefghi", {**query, "stop": "1800000000\n"})):
        with pytest.raises(LinkRefused) as refused:
            check(b"k" * 32, ws_id, "skip", q, now)
        assert refused.value.status == 400


def test_an_image_id_with_a_trailing_newline_is_refused() -> None:
    assert ImageChoice(image_id=IMAGE).image_id == IMAGE
    with pytest.raises(ValueError):
        ImageChoice(image_id=IMAGE + "\n")
