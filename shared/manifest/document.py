"""The manifest document and the guest's report it is partly made of (bounded: a guest is not
trusted, see shared.remote.reports)."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.manifest import pins

SCHEMA = "labimage-manifest/1"
SHA256 = r"^[0-9a-f]{64}$"
MAX_PACKAGES = 20_000
_T = TypeVar("_T")


CommitId = Annotated[str, Field(pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")]  # SHA-1 or SHA-256


class _Guest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class GuestPythonPackage(_Guest):
    """One installed distribution: what a rebuild's lock line is made of, so a plain pin."""

    name: str = Field(min_length=1, max_length=200)
    version: str = Field(min_length=1, max_length=100)
    hashes: list[str] = Field(default_factory=list, max_length=500)

    @field_validator("name")
    @classmethod
    def _pep508_name(cls, name: str) -> str:
        return _checked(name, pins.name_problem(name))

    @field_validator("version")
    @classmethod
    def _pep440_version(cls, version: str) -> str:
        return _checked(version, pins.version_problem(version))

    @field_validator("hashes")
    @classmethod
    def _sha256_hashes(cls, hashes: list[str]) -> list[str]:
        for value in hashes:
            _checked(value, pins.hash_problem(value))
        return hashes


def _checked(value: _T, problem: str | None) -> _T:
    if problem:
        raise ValueError(problem)
    return value


class GuestOsPackage(_Guest):
    name: str = Field(min_length=1, max_length=200)
    version: str = Field(max_length=200)
    arch: str = Field(max_length=40)


class GuestFacts(_Guest):
    """collect_guest.py's report."""

    python_version: str | None = Field(None, max_length=40)
    installer: str | None = Field(None, max_length=40)
    installer_version: str | None = Field(None, max_length=200)
    conda_explicit: str | None = Field(None, max_length=4 * 1024 * 1024)
    packages: list[GuestPythonPackage] = Field(default_factory=list, max_length=MAX_PACKAGES)
    os_id: str | None = Field(None, pattern=r"^[a-z0-9._-]{1,40}$")
    os_packages: list[GuestOsPackage] = Field(default_factory=list, max_length=MAX_PACKAGES)
    commits: dict[Annotated[str, Field(max_length=1_024)], CommitId | None] = Field(
        default_factory=dict, max_length=100
    )


# Parts of a manifest that name this build rather than what the image holds: left out when
# two manifests are compared.
VOLATILE_KEYS = ("build", "collected_at", "request")


def environment(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without what names the build (ids, timestamps, the request)."""
    return {k: v for k, v in manifest.items() if k not in VOLATILE_KEYS}
