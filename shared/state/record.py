"""The build record kept in Table storage: small values, replaced rather than mutated."""

from __future__ import annotations

import re
import secrets
import string
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.state.machine import Stage

MAX_EVENTS = 200


def utcnow() -> datetime:
    return datetime.now(UTC)


class BuildState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (BuildState.SUCCEEDED, BuildState.FAILED, BuildState.CANCELLED)


class StageRecord(BaseModel):
    """What happened in one stage: started, finished, attempts (retries + polls), last error."""

    model_config = ConfigDict(frozen=True)

    state: str = "pending"  # pending | running | succeeded | failed | skipped
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    polls: int = 0
    last_error: str | None = None
    # While an invocation runs this stage's hop: until when it holds it (a copy of the same
    # message delivered meanwhile waits instead of running the step a second time).
    claimed_until: datetime | None = None


class Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: datetime
    stage: str
    message: str


class Resource(BaseModel):
    """A marker of something this build created, so cleanup touches only that."""

    model_config = ConfigDict(frozen=True)

    type: str  # e.g. Microsoft.Compute/virtualMachines
    id: str
    kept: bool = False  # a kept VM (and what it needs) outlives the build


class Build(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    request: dict[str, Any]  # the validated request, as JSON
    owner: str = ""
    owner_id: str = ""  # object id of the signed-in principal who owns it ("" : admins only)
    # Submitted by an administrator or key holder: it may take over any labimage-made image.
    submitted_as_admin: bool = False
    reply_to: str = ""  # a queue submission's reply queue: told the outcome when it ends
    state: BuildState = BuildState.QUEUED
    stage: Stage = Stage.PROVISION
    token: str = ""  # the only message token this build accepts next (drops duplicates)
    next_hop_due: datetime | None = None  # when the next message should have run (watchdog)
    outcome: BuildState | None = None  # what cleanup will end in
    cancel_requested: bool = False
    stages: dict[str, StageRecord] = Field(default_factory=dict)
    progress: dict[str, dict[str, Any]] = Field(default_factory=dict)  # per-stage markers
    resources: list[Resource] = Field(default_factory=list)
    outputs: dict[str, Any] = Field(default_factory=dict)  # image id, report, connection...
    events: list[Event] = Field(default_factory=list)
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def by_admin(self) -> bool:
        """Whether an administrator or key holder submitted it. A record from before
        `submitted_as_admin` counts when it has no owner id: only they submit such builds."""
        return self.submitted_as_admin or not self.owner_id

    def stage_record(self, stage: Stage | str) -> StageRecord:
        return self.stages.get(str(stage), StageRecord())

    def with_stage_record(self, stage: Stage | str, record: StageRecord) -> Build:
        return self.model_copy(update={"stages": {**self.stages, str(stage): record}})

    def with_progress(self, stage: Stage | str, **markers: Any) -> Build:
        current = self.progress.get(str(stage), {})
        return self.model_copy(
            update={"progress": {**self.progress, str(stage): {**current, **markers}}}
        )

    def marker(self, stage: Stage | str, name: str, default: Any = None) -> Any:
        return self.progress.get(str(stage), {}).get(name, default)

    def with_event(self, message: str, stage: Stage | str | None = None) -> Build:
        event = Event(at=utcnow(), stage=str(stage or self.stage), message=message)
        return self.model_copy(update={"events": [*self.events, event][-MAX_EVENTS:]})

    def with_resource(self, type_: str, id_: str, kept: bool = False) -> Build:
        if any(r.id.lower() == id_.lower() for r in self.resources):
            return self
        return self.model_copy(
            update={"resources": [*self.resources, Resource(type=type_, id=id_, kept=kept)]}
        )

    def with_outputs(self, **outputs: Any) -> Build:
        return self.model_copy(update={"outputs": {**self.outputs, **outputs}})


_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_build_id() -> str:
    """A short id that is valid inside every Azure resource name the build derives from it."""
    return "b" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(9))


_BUILD_ID = re.compile(r"b[a-z0-9]{9}")


def is_build_id(value: str) -> bool:
    """Whether `value` has the form new_build_id gives (a path segment is checked with this
    before it is used as a Table key)."""
    return _BUILD_ID.fullmatch(value) is not None


def new_token() -> str:
    return secrets.token_hex(8)
