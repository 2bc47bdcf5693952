"""Constrained string types the request model is built from (checks live in names/paths/...)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from shared.models import git, names, packages, paths
from shared.zones import zone_named

PYTHON_VERSION_PATTERN = r"^3\.(9|1[0-3])(\.(0|[1-9][0-9]?))?$"
TIME_OF_DAY_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
KERNEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


def _schema(pattern: str) -> dict[str, str]:
    return {"pattern": pattern}


def check_python_version(value: str) -> str:
    """A CPython version 3.9 to 3.13, as major.minor or major.minor.patch."""
    if not re.fullmatch(PYTHON_VERSION_PATTERN, value):
        raise ValueError("use a Python version from 3.9 to 3.13, such as '3.11' or '3.12.4'")
    return value


def check_time_of_day(value: str) -> str:
    """A 24-hour time written HH:MM."""
    if not re.fullmatch(TIME_OF_DAY_PATTERN, value):
        raise ValueError("write the time as HH:MM on a 24-hour clock, for example '19:00'")
    return value


def check_time_zone(value: str) -> str:
    """An IANA time zone name that this Python knows, such as 'Europe/Berlin'."""
    if re.fullmatch(TIME_ZONE_PATTERN, value) and zone_named(value) is not None:
        return value
    raise ValueError(f"'{value}' is not an IANA time zone name such as 'Europe/Berlin' or 'UTC'")


def check_kernel_name(value: str) -> str:
    """A Jupyter kernel spec name."""
    if not re.fullmatch(KERNEL_NAME_PATTERN, value):
        raise ValueError("kernel names use letters, digits, '.', '_' and '-', such as 'python3'")
    return value


BuildName = Annotated[
    str,
    Field(min_length=1, max_length=40, json_schema_extra=_schema(names.BUILD_NAME_PATTERN)),
    AfterValidator(names.check_build_name),
]
Owner = Annotated[
    str,
    Field(
        min_length=1, max_length=128, json_schema_extra=_schema(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
    ),
    AfterValidator(lambda v: _plain(v, "owner", "alice or alice@example.org")),
]
Project = Annotated[
    str,
    Field(
        min_length=1, max_length=64, json_schema_extra=_schema(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
    ),
    AfterValidator(lambda v: _plain(v, "project", "ooi-ship-data")),
]
VmSize = Annotated[
    str,
    Field(max_length=64, json_schema_extra=_schema(names.VM_SIZE_PATTERN)),
    AfterValidator(names.check_vm_size),
]
AdminUsername = Annotated[
    str,
    Field(min_length=1, max_length=32, json_schema_extra=_schema(names.ADMIN_USERNAME_PATTERN)),
    AfterValidator(names.check_admin_username),
]
MarketplaceName = Annotated[
    str,
    Field(min_length=1, max_length=64, json_schema_extra=_schema(names.MARKETPLACE_NAME_PATTERN)),
    AfterValidator(names.check_marketplace_name),
]
ImageVersion = Annotated[
    str,
    Field(max_length=64, json_schema_extra=_schema(names.IMAGE_VERSION_PATTERN)),
    AfterValidator(names.check_image_version),
]
ContainerName = Annotated[
    str,
    Field(min_length=3, max_length=63, json_schema_extra=_schema(names.CONTAINER_NAME_PATTERN)),
    AfterValidator(names.check_container_name),
]
ImageName = Annotated[
    str,
    Field(min_length=1, max_length=80, json_schema_extra=_schema(names.IMAGE_NAME_PATTERN)),
    AfterValidator(names.check_image_name),
]
GalleryName = Annotated[
    str,
    Field(min_length=1, max_length=80, json_schema_extra=_schema(names.GALLERY_NAME_PATTERN)),
    AfterValidator(names.check_gallery_name),
]
GalleryDefinition = Annotated[
    str,
    Field(min_length=1, max_length=80, json_schema_extra=_schema(names.GALLERY_DEFINITION_PATTERN)),
    AfterValidator(names.check_gallery_definition),
]
GalleryVersion = Annotated[
    str,
    Field(max_length=32, json_schema_extra=_schema(names.GALLERY_VERSION_PATTERN)),
    AfterValidator(names.check_gallery_version),
]
AbsolutePath = Annotated[
    str,
    Field(min_length=1, max_length=paths.MAX_PATH_CHARS),
    AfterValidator(paths.normalize_absolute_path),
]
MountPoint = Annotated[
    str,
    Field(min_length=1, max_length=paths.MAX_PATH_CHARS),
    AfterValidator(paths.check_mount_point),
]
BlobName = Annotated[
    str, Field(max_length=paths.MAX_BLOB_NAME_CHARS), AfterValidator(paths.check_blob_name)
]
BlobPrefix = Annotated[
    str, Field(max_length=paths.MAX_BLOB_NAME_CHARS), AfterValidator(paths.check_blob_prefix)
]
NotebookPattern = Annotated[
    str,
    Field(min_length=1, max_length=paths.MAX_PATH_CHARS),
    AfterValidator(paths.check_notebook_pattern),
]
RepositoryUrl = Annotated[
    str, Field(min_length=1, max_length=git.MAX_URL_CHARS), AfterValidator(git.check_repository_url)
]
GitRef = Annotated[
    str, Field(min_length=1, max_length=git.MAX_REF_CHARS), AfterValidator(git.check_git_ref)
]
PackageRequirement = Annotated[
    str,
    Field(min_length=1, max_length=packages.MAX_REQUIREMENT_CHARS),
    AfterValidator(packages.check_requirement),
]
RequirementsTxt = Annotated[
    str,
    Field(max_length=packages.MAX_FILE_BODY_CHARS),
    AfterValidator(packages.check_requirements_txt),
]
EnvironmentYml = Annotated[
    str,
    Field(max_length=packages.MAX_FILE_BODY_CHARS),
    AfterValidator(packages.check_environment_yml),
]
PythonVersion = Annotated[
    str,
    Field(max_length=16, json_schema_extra=_schema(PYTHON_VERSION_PATTERN)),
    AfterValidator(check_python_version),
]
TimeOfDay = Annotated[
    str,
    Field(max_length=5, json_schema_extra=_schema(TIME_OF_DAY_PATTERN)),
    AfterValidator(check_time_of_day),
]
TimeZone = Annotated[
    str,
    Field(min_length=1, max_length=64, json_schema_extra=_schema(TIME_ZONE_PATTERN)),
    AfterValidator(check_time_zone),
]
KernelName = Annotated[
    str,
    Field(min_length=1, max_length=64, json_schema_extra=_schema(KERNEL_NAME_PATTERN)),
    AfterValidator(check_kernel_name),
]


def _plain(value: str, what: str, example: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@+-]*", value):
        raise ValueError(
            f"{what} uses letters, digits and . _ @ + -, starting with a letter or digit "
            f"(for example '{example}')"
        )
    return value
