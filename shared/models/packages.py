"""Package lists a request may carry: PEP 508 requirements, requirements.txt, environment.yml.

Everything here ends up on the VM as an argument or a file for pip, uv or conda, so only plain
requirements are accepted: no URLs, no direct references, no pip options, no shell characters.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

MAX_REQUIREMENT_CHARS = 200
MAX_PACKAGES = 200
MAX_FILE_BODY_CHARS = 16 * 1024

# Everything PEP 508 needs for names, extras, version specifiers and simple markers. Characters
# PEP 508 allows only inside marker strings ($ ` | & \ ...) are left out on purpose.
_REQUIREMENT_CHARS = re.compile(r"[A-Za-z0-9 ._\-\[\],<>=!~*;'\"()+]+")
_CONDA_CHANNEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CONDA_SPEC = re.compile(
    r"(?P<name>(?:[A-Za-z0-9][A-Za-z0-9._-]*::)?[A-Za-z0-9_][A-Za-z0-9._-]*)"
    r"(?P<version>[ =<>!~]?[A-Za-z0-9._*,|<>=!~+ ]*)?"
)
ENVIRONMENT_YML_KEYS = ("name", "channels", "dependencies")


def check_requirement(value: str) -> str:
    """A PEP 508 requirement such as 'numpy>=1.26' or 'xarray[io]>=2024.1; python_version>="3.10"'.

    Returns the text unchanged; ValueError with the reason otherwise.
    """
    if not value.strip():
        raise ValueError("package entries cannot be empty")
    if value != value.strip():
        raise ValueError("remove the spaces at the start or end of the package entry")
    if value.startswith("-"):
        raise ValueError(
            f"'{value}' is a pip option; only package requirements such as 'numpy>=1.26' "
            "are accepted (indexes and editable installs are not supported)"
        )
    if "://" in value or "@" in value:
        raise ValueError(
            f"'{value}' refers to a URL or direct reference; name a package from the package "
            "index instead, for example 'numpy>=1.26'"
        )
    if not _REQUIREMENT_CHARS.fullmatch(value):
        bad = "".join(sorted({c for c in value if not _REQUIREMENT_CHARS.fullmatch(c)}))
        raise ValueError(
            f"'{value}' contains {bad!r}, which a package requirement does not use; "
            "write it like 'numpy>=1.26' or 'pandas[parquet]>=2,<3'"
        )
    try:
        Requirement(value)
    except InvalidRequirement as error:
        reason = str(error).splitlines()[0]
        raise ValueError(
            f"'{value}' is not a valid package requirement ({reason}); "
            "write it like 'numpy>=1.26' or 'pandas[parquet]>=2,<3'"
        ) from None
    return value


def duplicate_package_names(requirements: list[str]) -> list[str]:
    """Package names (normalised) listed more than once, in first-seen order."""
    seen: set[str] = set()
    duplicates: list[str] = []
    for text in requirements:
        name = canonicalize_name(Requirement(text).name)
        if name in seen and name not in duplicates:
            duplicates.append(name)
        seen.add(name)
    return duplicates


def check_requirements_txt(value: str) -> str:
    """A requirements.txt body: one PEP 508 requirement per line; comments and blank lines allowed.

    pip options (-e, -r, --index-url, ...) and line continuations are refused.
    """
    _check_body(value)
    for number, line in enumerate(value.splitlines(), start=1):
        text = _strip_comment(line).strip()
        if not text:
            continue
        if text.endswith("\\"):
            raise ValueError(f"line {number}: line continuations ('\\') are not supported")
        try:
            check_requirement(text)
        except ValueError as error:
            raise ValueError(f"line {number}: {error}") from None
    return value


def check_environment_yml(value: str) -> str:
    """A conda environment.yml body with name, channels and dependencies only.

    Channels are names (no URLs); dependencies are conda match specs or one 'pip:' list of PEP 508
    requirements; 'python' itself is not listed because python.version chooses it.
    """
    try:
        return _check_environment_document(value)
    except RecursionError:
        raise ValueError("the environment file is nested too deeply") from None


def _check_environment_document(value: str) -> str:
    _check_body(value)
    try:
        document = yaml.safe_load(value)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"this is not valid YAML{where}") from None
    if not isinstance(document, dict):
        raise ValueError("the environment file must be a mapping with a 'dependencies' list")
    unknown = [str(k) for k in document if k not in ENVIRONMENT_YML_KEYS]
    if unknown:
        raise ValueError(
            f"unsupported key(s) {', '.join(unknown)}; "
            f"allowed are {', '.join(ENVIRONMENT_YML_KEYS)}"
        )
    name = document.get("name")
    if name is not None and not (isinstance(name, str) and _CONDA_CHANNEL.fullmatch(name)):
        raise ValueError("'name' must be a plain name such as 'ooi'")
    _check_channels(document.get("channels", []))
    _check_conda_dependencies(document.get("dependencies"))
    return value


def _check_channels(channels: Any) -> None:
    if not isinstance(channels, list):
        raise ValueError("'channels' must be a list of channel names")
    for channel in channels:
        if not (isinstance(channel, str) and _CONDA_CHANNEL.fullmatch(channel)):
            raise ValueError(
                f"channel {channel!r} is not a plain channel name such as 'conda-forge' "
                "(channel URLs are not supported)"
            )


def _check_conda_dependencies(dependencies: Any) -> None:
    if not isinstance(dependencies, list) or not dependencies:
        raise ValueError("'dependencies' must be a non-empty list")
    pip_lists = 0
    for entry in dependencies:
        if isinstance(entry, dict) and list(entry) == ["pip"]:
            pip_lists += 1
            pip = entry["pip"]
            if not isinstance(pip, list) or not all(isinstance(p, str) for p in pip):
                raise ValueError("'pip' must be a list of package requirements")
            for requirement in pip:
                try:
                    check_requirement(requirement)
                except ValueError as error:
                    raise ValueError(f"pip: {error}") from None
            continue
        if not isinstance(entry, str | int | float):
            raise ValueError(f"dependency {entry!r} must be a conda package spec or 'pip:' list")
        _check_conda_spec(str(entry))
    if pip_lists > 1:
        raise ValueError("list pip packages under one 'pip:' entry")


def _check_conda_spec(spec: str) -> None:
    match = _CONDA_SPEC.fullmatch(spec.strip())
    if match is None:
        raise ValueError(
            f"dependency {spec!r} is not a conda package spec such as 'xarray>=2024.1' "
            "or 'conda-forge::netcdf4'"
        )
    if match["name"].split("::")[-1].lower() == "python":
        raise ValueError("do not list python in the environment; set python.version instead")


def _check_body(value: str) -> None:
    if len(value) > MAX_FILE_BODY_CHARS:
        raise ValueError(f"the file may be at most {MAX_FILE_BODY_CHARS} characters")
    if "\x00" in value or "\t" in value:
        raise ValueError("the file cannot contain tabs or NUL characters")


def _strip_comment(line: str) -> str:
    # pip treats '#' as a comment at the start of a line or after whitespace.
    if line.lstrip().startswith("#"):
        return ""
    match = re.search(r"\s#", line)
    return line[: match.start()] if match else line
