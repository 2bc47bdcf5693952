"""The workstation record kept in Table storage: small values, replaced rather than mutated."""

from __future__ import annotations

import secrets
import string
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.state.record import Event, utcnow
from shared.workstations.machine import WsState

MAX_EVENTS = 100
_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_workstation_id() -> str:
    """A short id valid inside every Azure resource name derived from it (and as a key name)."""
    return "w" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(9))


class WsSpec(BaseModel):
    """What the workstation is: fixed when it is accepted."""

    model_config = ConfigDict(frozen=True)

    image_id: str  # a managed image or a gallery image version id
    image_source: str  # how it was asked for: "image_id", "gallery_image_version_id", "build X"
    security_type: str = "Standard"
    size: str
    admin_username: str = "azureuser"
    project: str = ""
    autostop: str = "off"  # the labimage-autostop tag value: "HH:MM Zone" or "off"
    idle_minutes: int | None = None  # None: the controller's default
    monthly_hours: float | None = None  # None: no quota
    # The image's data disk: its LUN, and where and how its build mounted it (None: no build
    # is known to have made the image); data_disk_gb: made larger than the image's, to this.
    data_disk_lun: int = 0
    data_disk_mount: tuple[str, str] | None = None  # (mount point, file system)
    data_disk_gb: int | None = None


class Usage(BaseModel):
    """Running hours of one calendar month (UTC), closed intervals plus the open one."""

    model_config = ConfigDict(frozen=True)

    month: str = ""  # YYYY-MM
    hours: float = 0.0
    running_since: datetime | None = None
    quota_reached: bool = False
    quota_waived: bool = False  # an administrator started it past the quota this month


class Workstation(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    owner: str
    owner_id: str = ""  # the principal's object id; "" when an administrator manages it
    spec: WsSpec
    state: WsState = WsState.CREATING
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    token: str = ""
    next_hop_due: datetime | None = None
    attempts: int = 0  # temporary failures of the current work state
    work_started_at: datetime | None = None
    progress: dict[str, Any] = Field(default_factory=dict)
    address: str | None = None
    usage: Usage = Field(default_factory=Usage)
    last_check: str | None = None  # what the last verification found
    stop_reason: str | None = None
    error: str | None = None
    events: list[Event] = Field(default_factory=list)

    def with_event(self, message: str) -> Workstation:
        event = Event(at=utcnow(), stage=self.state.value, message=message)
        return self.model_copy(update={"events": [*self.events, event][-MAX_EVENTS:]})

    def with_progress(self, **markers: Any) -> Workstation:
        return self.model_copy(update={"progress": {**self.progress, **markers}})

    def marker(self, name: str, default: Any = None) -> Any:
        return self.progress.get(name, default)
