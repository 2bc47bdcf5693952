"""Idempotency keys: the same key from the same submitter within 24 hours names one build.

Each key is one row in the builds table's `idempotency` partition, created with the Table's
insert (which fails when the row exists), so two submissions racing each other cannot both
win: exactly one insert succeeds and the other reads the winner's build id. An expired row, or
one whose build never got recorded (its writer crashed), is taken over with If-Match on its
ETag, again so that only one taker wins.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

PARTITION = "idempotency"
LIFETIME = timedelta(hours=24)
# A claim whose build is still not recorded after this long lost its writer (a crash).
ORPHANED_AFTER = timedelta(minutes=2)
MAX_KEY_CHARS = 200


@dataclass(frozen=True)
class Claimed:
    """This submission holds the key: record the build under `build_id`."""

    build_id: str


@dataclass(frozen=True)
class Taken:
    """An earlier submission holds the key."""

    build_id: str
    same_body: bool


def check_key(key: str) -> str | None:
    """Why `key` is not a usable idempotency key, or None."""
    if not 1 <= len(key) <= MAX_KEY_CHARS:
        return f"must be 1 to {MAX_KEY_CHARS} characters"
    if not all(" " < c < "\x7f" for c in key):
        return "must be printable ASCII without spaces"
    return None


def _row_key(submitter: str, key: str) -> str:
    # Table keys refuse '/', '\\', '#', '?' and control characters: a digest has none.
    return hashlib.sha256(f"{submitter}\n{key}".encode()).hexdigest()


class IdempotencyKeys:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def claim(
        self,
        submitter: str,
        key: str,
        body_digest: str,
        build_id: str,
        now: datetime,
        is_recorded: Callable[[str], bool],
    ) -> Claimed | Taken:
        """Claim `key` for a new build `build_id`, or report who holds it."""
        row = _row_key(submitter, key)
        entity = {
            "PartitionKey": PARTITION,
            "RowKey": row,
            "BuildId": build_id,
            "Digest": body_digest,
            "ClaimedAt": now,
        }
        for _ in range(5):
            try:
                self._table.create_entity(entity)
                return Claimed(build_id)
            except ResourceExistsError:
                pass
            try:
                held = self._table.get_entity(PARTITION, row)
            except ResourceNotFoundError:
                continue  # released meanwhile: insert again
            claimed_at = held["ClaimedAt"]
            orphaned = now - claimed_at > ORPHANED_AFTER and not is_recorded(held["BuildId"])
            if now - claimed_at < LIFETIME and not orphaned:
                return Taken(str(held["BuildId"]), held["Digest"] == body_digest)
            if self.take_over(held, entity):
                return Claimed(build_id)
        raise RuntimeError(f"idempotency key row {row} keeps changing")

    def take_over(self, held: dict[str, object], entity: dict[str, object]) -> bool:
        """Replace a stale claim, only if nobody else replaced it first."""
        try:
            self._table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=held.metadata["etag"],  # type: ignore[attr-defined]
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    def release(self, submitter: str, key: str, build_id: str) -> None:
        """Forget a claim whose build could not be recorded (only if it is still ours)."""
        try:
            held = self._table.get_entity(PARTITION, _row_key(submitter, key))
            if held["BuildId"] == build_id:
                self._table.delete_entity(
                    PARTITION,
                    held["RowKey"],
                    etag=held.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceNotFoundError, ResourceModifiedError):
            pass
