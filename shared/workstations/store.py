"""Workstations in Table storage (their own partition of the builds table), written with
If-Match on the ETag; and the record of signed links already used."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

from shared.state.table_docs import doc_of, doc_properties
from shared.workstations.record import Workstation

PARTITION = "workstation"
USED_LINKS = "workstation-link"


class WorkstationNotFound(Exception):
    pass


class ConcurrentChange(Exception):
    """Someone else wrote the workstation since it was read: reload and decide again."""


@dataclass(frozen=True)
class StoredWs:
    ws: Workstation
    etag: str


class WorkstationStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def create(self, ws: Workstation) -> StoredWs:
        meta = self._table.create_entity(_to_entity(ws))
        return StoredWs(ws, str(meta["etag"]))

    def get(self, ws_id: str) -> StoredWs:
        try:
            entity = self._table.get_entity(PARTITION, ws_id)
        except ResourceNotFoundError:
            raise WorkstationNotFound(ws_id) from None
        return StoredWs(_from_entity(entity), str(entity.metadata["etag"]))

    def replace(self, stored: StoredWs, ws: Workstation) -> StoredWs:
        """Write `ws` only if the row is still what `stored` read."""
        try:
            meta = self._table.update_entity(
                _to_entity(ws),
                mode=UpdateMode.REPLACE,
                etag=stored.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise ConcurrentChange(ws.id) from exc
        return StoredWs(ws, str(meta["etag"]))

    def list(
        self, owner_id: str | None = None, states: set[str] | None = None
    ) -> list[Workstation]:
        """Every workstation (of one principal when `owner_id` is given), newest first."""
        clauses, params = ["PartitionKey eq @pk"], {"pk": PARTITION}
        if owner_id is not None:
            clauses.append("OwnerId eq @owner_id")
            params["owner_id"] = owner_id
        found = [
            _from_entity(e)
            for e in self._table.query_entities(" and ".join(clauses), parameters=params)
        ]
        if states is not None:
            found = [w for w in found if w.state.value in states]
        return sorted(found, key=lambda w: w.created_at, reverse=True)

    def iter_all(self) -> Iterator[Workstation]:
        for entity in self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": PARTITION}
        ):
            yield _from_entity(entity)

    def use_link(self, link_id: str, ws_id: str, at: datetime) -> bool:
        """Record a signed link as used; False when it was used before (it works once)."""
        try:
            self._table.create_entity(
                {"PartitionKey": USED_LINKS, "RowKey": link_id, "Workstation": ws_id, "At": at}
            )
        except ResourceExistsError:
            return False
        return True

    def release_link(self, link_id: str) -> None:
        """Forget a use whose action could not be done."""
        self._table.delete_entity(USED_LINKS, link_id)

    def link_used(self, link_id: str) -> bool:
        try:
            self._table.get_entity(USED_LINKS, link_id, select=["RowKey"])
        except ResourceNotFoundError:
            return False
        return True


def _to_entity(ws: Workstation) -> dict[str, Any]:
    return {
        "PartitionKey": PARTITION,
        "RowKey": ws.id,
        "State": ws.state.value,
        "Owner": ws.owner,
        "OwnerId": ws.owner_id,
        "CreatedAt": ws.created_at,
        **doc_properties(ws.model_dump_json(), f"workstation {ws.id} record"),
    }


def _from_entity(entity: dict[str, Any]) -> Workstation:
    return Workstation.model_validate_json(doc_of(entity))
