"""JSON documents in Table entities: a string property holds at most 64 KiB (32 K UTF-16
characters), so a longer document is split over `Doc0`, `Doc1`, ... with its count in `Chunks`."""

from __future__ import annotations

from typing import Any

CHUNK_CHARS = 30_000
MAX_CHUNKS = 30


def doc_properties(doc: str, what: str) -> dict[str, Any]:
    """A JSON document as Table properties (`Chunks`, `Doc0`..): one string property holds at
    most 64 KiB, so a longer document is split. ValueError past MAX_CHUNKS."""
    chunks = [doc[i : i + CHUNK_CHARS] for i in range(0, len(doc), CHUNK_CHARS)]
    if len(chunks) > MAX_CHUNKS:
        raise ValueError(f"{what} is too large to store ({len(doc)} chars)")
    properties: dict[str, Any] = {"Chunks": len(chunks)}
    for i, chunk in enumerate(chunks):
        properties[f"Doc{i}"] = chunk
    return properties


def doc_of(entity: dict[str, Any]) -> str:
    """The JSON document `doc_properties` split into an entity."""
    return "".join(entity[f"Doc{i}"] for i in range(int(entity["Chunks"])))
