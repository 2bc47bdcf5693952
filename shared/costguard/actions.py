"""What the cost guards did and saw, in one Table: stops, problems, sweeps, warnings, idleness.

Rows are keyed so that doing the same thing twice (a redelivered message, a timer that runs
again) writes the same row: upserts, never duplicates. No secrets are ever written here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared.settings import connection_has_secret, service_endpoint

STOP = "stop"  # an auto-stop or idle stop that deallocated a VM
PROBLEM = "problem"  # a malformed tag, a VM that could not be stopped...
SWEEP = "sweep"  # a leaked resource deleted, or one the sweeper could not delete
WARNING = "warning"  # a notice sent before a stop
IDLE = "idle"  # since when a VM has been seen idle
SEEN = "seen"  # when the sweeper first saw a build id with no record and no creation time


def row_key(*parts: str) -> str:
    """A Table-safe key: ids carry '/' which RowKey forbids; the hash keeps it short and fixed."""
    return hashlib.sha256("|".join(p.lower() for p in parts).encode()).hexdigest()[:32]


def table_service(connection: str, credential: TokenCredential | None) -> TableServiceClient:
    """A Table service client: keyed from the connection string when it carries a secret,
    else on the connection's table endpoint with `credential`. Connects to nothing."""
    if connection_has_secret(connection) or credential is None:
        return TableServiceClient.from_connection_string(connection)
    return TableServiceClient(endpoint=service_endpoint(connection, "table"), credential=credential)


@dataclass(frozen=True)
class StopAction:
    vm_id: str
    at: datetime
    rule: str  # "autostop 19:00 Europe/Berlin" or "idle 60 min"
    kind: str  # "autostop" | "idle"
    hourly_saved: float | None  # None: the VM's size is not in the price table
    size: str = ""
    owner: str = ""
    project: str = ""


class CostActions:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    @classmethod
    def from_connection_string(
        cls, connection: str, table_name: str, credential: TokenCredential | None = None
    ) -> CostActions:
        """The table on the connection's account (made if missing); a key-less connection
        signs in with `credential` (the managed identity), as the builds table does."""
        service = table_service(connection, credential)
        service.create_table_if_not_exists(table_name)
        return cls(service.get_table_client(table_name))

    def _upsert(self, partition: str, key: str, at: datetime, **fields: Any) -> None:
        entity = {"PartitionKey": partition, "RowKey": key, "At": at}
        entity.update({k: v for k, v in fields.items() if v is not None})
        self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def record_stop(self, action: StopAction, due: datetime | None = None) -> None:
        """One row per VM and stop occasion (the due instant, or the time for idle stops)."""
        self._upsert(
            STOP,
            row_key(action.vm_id, (due or action.at).isoformat(), action.kind),
            action.at,
            VmId=action.vm_id,
            Rule=action.rule,
            Kind=action.kind,
            HourlySaved=action.hourly_saved,
            Size=action.size,
            Owner=action.owner,
            Project=action.project,
        )

    def record_problem(self, vm_id: str, at: datetime, message: str) -> None:
        """One row per VM and message, its time the last time it was seen."""
        self._upsert(PROBLEM, row_key(vm_id, message), at, VmId=vm_id, Message=message[:2000])

    def record_sweep(
        self, resource_id: str, build_id: str, at: datetime, outcome: str, message: str = ""
    ) -> None:
        """outcome is 'deleted' or 'failed'; a failed row names the resource for a person."""
        self._upsert(
            SWEEP,
            row_key(resource_id, outcome, at.isoformat()),
            at,
            ResourceId=resource_id,
            BuildId=build_id,
            Outcome=outcome,
            Message=message[:2000],
        )

    def warned(self, vm_id: str, stop: datetime) -> bool:
        try:
            self._table.get_entity(WARNING, row_key(vm_id, stop.isoformat()))
        except ResourceNotFoundError:
            return False
        return True

    def record_warning(self, vm_id: str, stop: datetime, at: datetime) -> None:
        self._upsert(WARNING, row_key(vm_id, stop.isoformat()), at, VmId=vm_id, StopAt=stop)

    def idle_since(self, vm_id: str) -> datetime | None:
        try:
            entity = self._table.get_entity(IDLE, row_key(vm_id))
        except ResourceNotFoundError:
            return None
        value = entity.get("Since")
        return value if isinstance(value, datetime) else None

    def set_idle_since(self, vm_id: str, since: datetime | None, at: datetime) -> None:
        """Remember since when the VM has been idle; None forgets it (the VM is busy)."""
        if since is None:
            self._table.delete_entity(IDLE, row_key(vm_id))  # a missing row is not an error
            return
        self._upsert(IDLE, row_key(vm_id), at, VmId=vm_id, Since=since)

    def first_seen(self, build_id: str, now: datetime) -> datetime:
        """When the sweeper first saw a build id; `now` (and remembered) the first time."""
        key = row_key(build_id)
        try:
            value = self._table.get_entity(SEEN, key).get("At")
            if isinstance(value, datetime):
                return value
        except ResourceNotFoundError:
            pass
        self._upsert(SEEN, key, now, BuildId=build_id)
        return now

    def rows(self, partition: str, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
        """Rows of one kind whose time lies in [start, end)."""
        query = "PartitionKey eq @pk and At ge @start and At lt @end"
        params = {"pk": partition, "start": start, "end": end}
        for entity in self._table.query_entities(query, parameters=params):
            yield dict(entity)
