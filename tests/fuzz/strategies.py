"""Hostile inputs: the seed request mutated at random paths, and arbitrary JSON and text."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

SEED: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "examples" / "seed-request.json").read_text()
)

# Text a hostile user types: shell metacharacters, paths, unicode, controls, huge numbers.
NASTY_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "-rf",
            "--upload-pack=touch /tmp/x",
            "$(id)",
            "`id`",
            "a;b",
            "../../etc/passwd",
            "/datadrive/../etc",
            "HTTPS://example.org/x.git",
            "file:///etc/passwd",
            "Europe",
            "America/Indiana",
            "9999-12-31T23:59:59+00:00",
            "[" * 300,
            "\x00",
            "\u202e",
            "1e999",
            "NaN",
            "azure-webjobs-secrets",
            "x" * 5000,
        ]
    ),
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    NASTY_TEXT,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(NASTY_TEXT, inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*prefix, index)))
    return found


SEED_PATHS = _paths(SEED)[1:]


@st.composite
def mutated_requests(draw: st.DrawFn) -> Any:
    """The seed with a few fields replaced, removed or added; sometimes not an object at all."""
    if draw(st.integers(0, 19)) == 0:
        return draw(JSON_VALUES)
    doc: Any = copy.deepcopy(SEED)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(SEED_PATHS))
        parent: Any = doc
        try:
            for part in path[:-1]:
                parent = parent[part]
            action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
            if action == "replace":
                parent[path[-1]] = draw(JSON_VALUES)
            elif action == "delete" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, dict):
                parent[draw(NASTY_TEXT)] = draw(JSON_VALUES)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation changed the shape under this path
    return doc


def encoded(value: Any) -> bytes:
    return json.dumps(value).encode()
