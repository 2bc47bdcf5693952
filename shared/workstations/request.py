"""POST /api/workstations and POST /api/workstations:batch bodies: parsed, or refused with
problems that name the field."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.costguard.idle import MAX_IDLE_MINUTES
from shared.models.fields import AdminUsername, BuildName, Owner, Project, VmSize
from shared.models.parse import problems_from_validation_error
from shared.models.problems import Problem, RequestInvalid, RequestTooLarge, cross_field_error
from shared.models.request import AutoStop

MAX_BODY_BYTES = 64 * 1024
MAX_BATCH = 100
MAX_MONTHLY_HOURS = 744.0  # 31 days
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._()-]{0,89}"
MANAGED_IMAGE_ID = re.compile(
    rf"^/subscriptions/[0-9a-fA-F-]{{36}}/resourceGroups/{_SEGMENT}"
    rf"/providers/Microsoft\.Compute/images/{_SEGMENT}$",
    re.IGNORECASE,
)
GALLERY_VERSION_ID = re.compile(
    rf"^/subscriptions/[0-9a-fA-F-]{{36}}/resourceGroups/{_SEGMENT}"
    rf"/providers/Microsoft\.Compute/galleries/{_SEGMENT}/images/{_SEGMENT}"
    r"/versions/[0-9]+\.[0-9]+\.[0-9]+$",
    re.IGNORECASE,
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageChoice(_Model):
    """Exactly one of: a managed image id, a gallery image version id, or the name of a build
    request whose latest succeeded build made the image."""

    image_id: str | None = Field(None, max_length=1024, description="A managed image id.")
    gallery_image_version_id: str | None = Field(
        None, max_length=1024, description="A Compute Gallery image version id."
    )
    build: BuildName | None = Field(
        None, description="Request name: the image of its latest succeeded build."
    )

    @model_validator(mode="after")
    def _one_choice(self) -> ImageChoice:
        given = [n for n in ("image_id", "gallery_image_version_id", "build") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError("give exactly one of image_id, gallery_image_version_id or build")
        problems = []
        if self.image_id and not MANAGED_IMAGE_ID.fullmatch(self.image_id):
            problems.append(("image_id", "must be a managed image resource id"))
        if self.gallery_image_version_id and not GALLERY_VERSION_ID.fullmatch(
            self.gallery_image_version_id
        ):
            problems.append(
                ("gallery_image_version_id", "must be a gallery image version resource id")
            )
        if problems:
            raise cross_field_error(problems)
        return self


IdleMinutes = Annotated[int, Field(ge=5, le=MAX_IDLE_MINUTES)]


class WsDataDisk(_Model):
    """The data disk the image brings, made larger: its partition and file system grow to it."""

    size_gb: int = Field(
        ge=1,
        le=32767,
        description="Size in GB: at least the image's data disk (Azure makes "
        "no disk smaller than its image's).",
    )


MonthlyHours = Annotated[float, Field(gt=0, le=MAX_MONTHLY_HOURS, allow_inf_nan=False)]


class WorkstationOptions(_Model):
    """What every workstation of a request shares."""

    image: ImageChoice
    size: VmSize | None = Field(None, description="VM size; default: the build's size.")
    admin_username: AdminUsername | None = Field(
        None, description="Login user; default: the build's user, else 'azureuser'."
    )
    project: Project | None = None
    autostop: AutoStop = Field(default_factory=AutoStop)
    idle_minutes: IdleMinutes | None = Field(
        None, description="Deallocate after this many idle minutes; default: the controller's."
    )
    monthly_hours: MonthlyHours | None = Field(
        None, description="Running hours allowed per calendar month (UTC); none: no quota."
    )
    data_disk: WsDataDisk | None = Field(
        None, description="A larger data disk than the image's; default: the image's size."
    )


class WorkstationRequest(WorkstationOptions):
    owner: Owner


class OwnerOverride(_Model):
    """What one owner of a batch gets differently (a teaching assistant's longer quota)."""

    size: VmSize | None = None
    autostop: AutoStop | None = None
    idle_minutes: IdleMinutes | None = None
    monthly_hours: MonthlyHours | None = None
    data_disk: WsDataDisk | None = None


class BatchRequest(WorkstationOptions):
    owners: list[Owner] = Field(min_length=1, max_length=MAX_BATCH)
    overrides: dict[str, OwnerOverride] = Field(
        default_factory=dict, description="Per owner (one of owners): options that differ."
    )

    def one(self, owner: str) -> WorkstationRequest:
        fields = self.model_dump(exclude={"owners", "overrides"})
        override = self.overrides.get(owner)
        if override is not None:
            fields.update(override.model_dump(exclude_none=True))
        return WorkstationRequest.model_validate({**fields, "owner": owner})


def _load(body: bytes) -> Any:
    if len(body) > MAX_BODY_BYTES:
        raise RequestTooLarge(len(body), MAX_BODY_BYTES)
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise RequestInvalid([Problem(field="", message="the body is not JSON text")]) from None
    if not isinstance(document, dict):
        raise RequestInvalid([Problem(field="", message="the request must be a JSON object")])
    return document


def parse_workstation_request(body: bytes) -> WorkstationRequest:
    document = _load(body)
    try:
        return WorkstationRequest.model_validate(document, strict=True)
    except ValidationError as error:
        raise RequestInvalid(problems_from_validation_error(error, WorkstationRequest)) from None


def parse_batch_request(body: bytes) -> BatchRequest:
    document = _load(body)
    try:
        batch = BatchRequest.model_validate(document, strict=True)
    except ValidationError as error:
        raise RequestInvalid(problems_from_validation_error(error, BatchRequest)) from None
    lowered = [o.lower() for o in batch.owners]
    twice = [i for i, o in enumerate(lowered) if o in lowered[:i]]
    if twice:
        raise RequestInvalid(
            [Problem(field=f"owners[{twice[0]}]", message="this owner is listed twice")]
        )
    stray = [o for o in batch.overrides if o not in batch.owners]
    if stray:
        field = f"overrides[{json.dumps(stray[0])}]"
        raise RequestInvalid([Problem(field=field, message="this owner is not in owners")])
    return batch
