"""Repository URLs and refs a request may name for `git clone`."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MAX_URL_CHARS = 2048
MAX_REF_CHARS = 255

_HOST = re.compile(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]")
_PATH = re.compile(r"[A-Za-z0-9._~/+%@-]*")


def check_repository_url(value: str) -> str:
    """An https:// URL with a host, no credentials, no query or fragment; ValueError otherwise.

    Credentials are refused because the URL is stored and reported; a private repository needs
    a different mechanism, not a token in the request.
    """
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("the URL cannot contain spaces or control characters")
    if value.startswith("git@") or (":" in value and "://" not in value):
        raise ValueError(
            "SSH-style addresses (git@host:repo) are not supported; use the https:// URL"
        )
    parts = urlsplit(value)
    if parts.scheme.lower() != "https":
        scheme = parts.scheme or "no scheme"
        raise ValueError(f"the URL must start with https:// (it uses {scheme})")
    if "@" in parts.netloc:
        raise ValueError(
            "the URL contains credentials (user:password@ or token@); remove them, "
            "requests are stored and shown to others"
        )
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValueError("remove the query ('?...') or fragment ('#...') from the URL")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port in the URL is not a number between 1 and 65535") from None
    host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    if not host or not _HOST.fullmatch(host):
        raise ValueError("the URL needs a host name, for example https://github.com/org/repo.git")
    if port == 0:
        raise ValueError("the port in the URL is not a number between 1 and 65535")
    if not parts.path.strip("/") or not _PATH.fullmatch(parts.path):
        raise ValueError("the URL needs a plain repository path such as /org/repo.git")
    # The scheme is case-insensitive; the guest's clone script (and git) want it lower-case.
    return "https" + value[len(parts.scheme) :]


def check_git_ref(value: str) -> str:
    """A branch, tag or commit name following `git check-ref-format`, and never an option."""
    if not value:
        raise ValueError("ref cannot be empty; name a branch, tag or commit")
    if value.startswith("-"):
        raise ValueError("a ref cannot start with '-'")
    problems = (
        (
            any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value),
            "spaces or control characters",
        ),
        (any(c in value for c in "~^:?*[\\"), "any of ~ ^ : ? * [ \\"),
        (".." in value, "'..'"),
        ("@{" in value, "'@{'"),
        (value == "@", "only '@'"),
        ("//" in value or value.startswith("/") or value.endswith("/"), "empty '/' parts"),
        (value.endswith(".") or value.endswith(".lock"), "a trailing '.' or '.lock'"),
        (any(p.startswith(".") for p in value.split("/")), "parts starting with '.'"),
    )
    for failed, what in problems:
        if failed:
            raise ValueError(f"'{value}' is not a valid git ref: it contains {what}")
    return value
