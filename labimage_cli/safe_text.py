"""What the server (and through it, a guest) says is shown as plain text, never as commands
to the terminal.

Every string a response carries went through the API from somewhere a user may not control: a
notebook's error, a guest's log tail, a resource name. Two things are removed before it is
shown: terminal control characters (escape sequences can move the cursor, rewrite earlier
lines, set the window title or make links), and Unicode direction overrides (which reorder
what is displayed). Rich markup is not interpreted either: renderers wrap values in `Text`.
"""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text

# C0 controls except tab and newline, DEL, C1 controls; bidirectional embeddings, overrides
# and isolates (the "trojan source" characters).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]")


def clean_str(value: str) -> str:
    """`value` without terminal control or direction-override characters; tabs become spaces."""
    return _UNSAFE.sub("", value).replace("\t", " ")


def clean(value: Any) -> Any:
    """A decoded JSON document with every string (keys included) cleaned."""
    if isinstance(value, str):
        return clean_str(value)
    if isinstance(value, list):
        return [clean(item) for item in value]
    if isinstance(value, dict):
        return {clean_str(str(k)): clean(v) for k, v in value.items()}
    return value


def plain(value: Any, style: str = "") -> Text:
    """A server-provided value as literal text: markup like `[red]` or `[link=...]` is shown
    as written, control characters are gone."""
    return Text(clean_str("" if value is None else str(value)), style=style)
