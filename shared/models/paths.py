"""Paths on the VM and names in Blob storage: what a request may name, in normal form.

Paths end up in remote commands (always quoted) and in fstab, so the allowed characters are
deliberately plain: a path that needs quoting to be read by a person is refused.
"""

from __future__ import annotations

import re

MAX_PATH_CHARS = 512
MAX_BLOB_NAME_CHARS = 1024
PATH_SEGMENT_PATTERN = r"[A-Za-z0-9._+@-]+"
ABSOLUTE_PATH_PATTERN = rf"^/({PATH_SEGMENT_PATTERN}/?)*$"

# Top-level folders the data disk may not be mounted on or under: the OS lives there, the
# resource disk (/mnt) is wiped on deallocation, and /home is removed by deprovisioning.
SYSTEM_DIRS = (
    "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
    "/lost+found", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/snap", "/sys",
    "/tmp", "/usr", "/var",
)  # fmt: skip

# Where software is installed. Repositories may go below /opt, except inside the controller's
# own install folder.
OPT_ROOT = "/opt"
INSTALL_ROOT = "/opt/labimage"

_SEGMENT = re.compile(PATH_SEGMENT_PATTERN)
_MOUNT_POINT = re.compile(r"/[A-Za-z0-9._/-]*")
_GLOB_SEGMENT = re.compile(r"[A-Za-z0-9._+@*?\[\]!-]+")


def normalize_absolute_path(value: str) -> str:
    """The path in normal form ('//' and '/./' collapsed, no trailing '/'); ValueError if unsafe.

    Refused: relative paths, '..' segments, and characters outside letters, digits and . _ + @ -.
    """
    if not value.startswith("/"):
        raise ValueError(f"'{value}' is not an absolute path; start it with '/'")
    if len(value) > MAX_PATH_CHARS:
        raise ValueError(f"paths may be at most {MAX_PATH_CHARS} characters")
    segments = [s for s in value.split("/") if s not in ("", ".")]
    for segment in segments:
        if segment == "..":
            raise ValueError("'..' is not allowed in paths; write the path without it")
        if not _SEGMENT.fullmatch(segment):
            raise ValueError(
                f"'{segment}' in the path contains characters other than letters, digits "
                "and . _ + @ -"
            )
    return "/" + "/".join(segments)


def is_within(path: str, root: str) -> bool:
    """True if the normalised `path` is `root` or lies below it."""
    return root == "/" or path == root or path.startswith(root + "/")


def check_mount_point(value: str) -> str:
    """A mount point for the data disk: absolute, normalised, not '/' nor a system folder."""
    path = normalize_absolute_path(value)
    if path == "/":
        raise ValueError("the data disk cannot be mounted on '/'")
    # The same rule as mount_disk.sh on the guest (it also goes into fstab, which splits on
    # spaces): letters, digits, '.', '_', '-'; and never '..' anywhere, even inside a name.
    if not _MOUNT_POINT.fullmatch(path) or ".." in path:
        raise ValueError(
            f"'{path}': a mount point may contain only letters, digits, '.', '_', '-' "
            "(no '..', '+' or '@')"
        )
    for system_dir in SYSTEM_DIRS:
        if is_within(path, system_dir):
            raise ValueError(
                f"'{path}' is inside {system_dir}, which the system uses; "
                "mount the data disk at a new top-level folder such as /datadrive"
            )
    return path


def check_blob_name(value: str) -> str:
    """A blob name that maps to a safe relative path: no leading '/', no '.' or '..' segments."""
    if not value:
        raise ValueError("blob names cannot be empty")
    _check_blob_text(value)
    if value.endswith("/"):
        raise ValueError(f"'{value}' ends with '/', which names a folder, not a blob; use prefix")
    return value


def check_blob_prefix(value: str) -> str:
    """A blob name prefix ('' means the whole container); same rules as a blob name."""
    if value:
        _check_blob_text(value)
    return value


def _check_blob_text(value: str) -> None:
    if len(value) > MAX_BLOB_NAME_CHARS:
        raise ValueError(f"blob names may be at most {MAX_BLOB_NAME_CHARS} characters")
    if value.startswith("/"):
        raise ValueError("blob names are relative to the container; remove the leading '/'")
    if "\\" in value or any(not c.isprintable() for c in value):
        raise ValueError("blob names cannot contain backslashes or control characters")
    segments = value.split("/")
    # The last segment of a prefix may be empty ("AT4212/"); inner empty segments make odd paths.
    if any(s in (".", "..") for s in segments) or "" in segments[:-1]:
        raise ValueError("blob names cannot contain '.', '..' or empty ('//') path segments")


def check_notebook_pattern(value: str) -> str:
    """A glob pattern for notebooks: '*', '?', '[...]' and '**'; no '..'; ends with .ipynb."""
    if not value.endswith(".ipynb"):
        raise ValueError(
            "notebook patterns must end with '.ipynb', for example 'notebooks/*.ipynb'"
        )
    if len(value) > MAX_PATH_CHARS:
        raise ValueError(f"patterns may be at most {MAX_PATH_CHARS} characters")
    segments = [s for s in value.split("/") if s not in ("", ".")]
    for segment in segments:
        if segment == "..":
            raise ValueError("'..' is not allowed in notebook patterns")
        if not _GLOB_SEGMENT.fullmatch(segment):
            raise ValueError(
                f"'{segment}' contains characters other than letters, digits, . _ + @ - "
                "and the glob characters * ? [ ] !"
            )
    prefix = "/" if value.startswith("/") else ""
    return prefix + "/".join(segments)
