"""Builds in Table storage, written with If-Match on the ETag so two writers never both win."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared.settings import connection_has_secret, service_endpoint
from shared.state.idempotency import IdempotencyKeys
from shared.state.record import Build
from shared.state.rejected import PARTITION as REJECTED
from shared.state.rejected import RejectedSubmission
from shared.state.table_docs import doc_of, doc_properties

if TYPE_CHECKING:
    from shared.workstations.store import WorkstationStore

PARTITION = "build"


class BuildNotFound(Exception):
    pass


class ConcurrentUpdate(Exception):
    """Someone else wrote the build since it was read: reload and decide again."""


@dataclass(frozen=True)
class Stored:
    build: Build
    etag: str


@dataclass(frozen=True)
class RejectedPage:
    submissions: list[RejectedSubmission]
    next_token: str | None


@dataclass(frozen=True)
class Page:
    builds: list[Build]
    next_token: str | None


class BuildStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    @classmethod
    def from_connection_string(
        cls, connection: str, table_name: str, credential: TokenCredential | None = None
    ) -> BuildStore:
        """The store on the connection's account (the table is made if missing); a key-less
        connection signs in with `credential` (the managed identity)."""
        if connection_has_secret(connection) or credential is None:
            service = TableServiceClient.from_connection_string(connection)
        else:
            url = service_endpoint(connection, "table")
            service = TableServiceClient(endpoint=url, credential=credential)
        service.create_table_if_not_exists(table_name)
        return cls(service.get_table_client(table_name))

    def idempotency_keys(self) -> IdempotencyKeys:
        """The idempotency keys, kept in their own partition of the same table."""
        return IdempotencyKeys(self._table)

    def workstations(self) -> WorkstationStore:
        """The workstations, kept in their own partition of the same table."""
        from shared.workstations.store import WorkstationStore

        return WorkstationStore(self._table)

    def exists(self, build_id: str) -> bool:
        try:
            self._table.get_entity(PARTITION, build_id, select=["RowKey"])
        except ResourceNotFoundError:
            return False
        return True

    def record_rejected(self, rejected: RejectedSubmission) -> None:
        """Keep a refused submission (its own partition of the same table)."""
        self._table.create_entity(rejected.to_entity())

    def list_rejected(self, page_size: int = 50, page_token: str | None = None) -> RejectedPage:
        pages = self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": REJECTED}, results_per_page=page_size
        ).by_page(continuation_token=_decode_token(page_token))
        entities = list(next(iter(pages), []))
        found = [RejectedSubmission.from_entity(e) for e in entities]
        return RejectedPage(found, _encode_token(pages.continuation_token))  # type: ignore[attr-defined]

    def create(self, build: Build) -> Stored:
        """Insert a new build; raises ResourceExistsError if the id is taken."""
        meta = self._table.create_entity(_to_entity(build))
        return Stored(build, str(meta["etag"]))

    def get(self, build_id: str) -> Stored:
        try:
            entity = self._table.get_entity(PARTITION, build_id)
        except ResourceNotFoundError:
            raise BuildNotFound(build_id) from None
        return Stored(_from_entity(entity), str(entity.metadata["etag"]))

    def replace(self, stored: Stored, build: Build) -> Stored:
        """Write `build` only if the row is still what `stored` read."""
        try:
            meta = self._table.update_entity(
                _to_entity(build),
                mode=UpdateMode.REPLACE,
                etag=stored.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise ConcurrentUpdate(build.id) from exc
        return Stored(build, str(meta["etag"]))

    def list(
        self,
        *,
        state: str | None = None,
        owner: str | None = None,
        owner_id: str | None = None,
        page_size: int = 50,
        page_token: str | None = None,
    ) -> Page:
        """One page of builds matching the filters, with an opaque token for the next page."""
        clauses = ["PartitionKey eq @pk"]
        params: dict[str, Any] = {"pk": PARTITION}
        if state:
            clauses.append("State eq @state")
            params["state"] = state
        if owner:
            clauses.append("Owner eq @owner")
            params["owner"] = owner
        if owner_id is not None:
            clauses.append("OwnerId eq @owner_id")
            params["owner_id"] = owner_id
        pages = self._table.query_entities(
            " and ".join(clauses), parameters=params, results_per_page=page_size
        ).by_page(continuation_token=_decode_token(page_token))
        entities = list(next(iter(pages), []))
        builds = [_from_entity(e) for e in entities]
        return Page(builds, _encode_token(pages.continuation_token))  # type: ignore[attr-defined]

    def scan_active(self) -> Iterator[Build]:
        """Every build that is not finished (for the watchdog)."""
        query = "PartitionKey eq @pk and State ne 'succeeded' and State ne 'failed'"
        query += " and State ne 'cancelled'"
        for entity in self._table.query_entities(query, parameters={"pk": PARTITION}):
            yield _from_entity(entity)


def _to_entity(build: Build) -> dict[str, Any]:
    return {
        "PartitionKey": PARTITION,
        "RowKey": build.id,
        "State": build.state.value,
        "Stage": build.stage.value,
        "Owner": build.owner,
        "OwnerId": build.owner_id,
        "CreatedAt": build.created_at,
        **doc_properties(build.model_dump_json(), f"build {build.id} record"),
    }


def _from_entity(entity: dict[str, Any]) -> Build:
    return Build.model_validate_json(doc_of(entity))


def _encode_token(token: Any) -> str | None:
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode()


def _decode_token(token: str | None) -> Any:
    if not token:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except ValueError:
        raise ValueError("page_token is not a token this API gave out") from None
