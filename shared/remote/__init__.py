"""Scripts that run on the guest (package data in `scripts/`) and how they are rendered."""

from __future__ import annotations

from importlib import resources


def load_script(name: str) -> str:
    """The text of `scripts/<name>`, exactly as shipped with the package."""
    return resources.files(__package__).joinpath("scripts", name).read_text(encoding="utf-8")
