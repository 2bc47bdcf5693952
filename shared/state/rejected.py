"""Rejected submissions: a queued request that was refused is recorded, never dropped."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.state.record import utcnow
from shared.state.table_docs import doc_of, doc_properties
from shared.telemetry import scrub

PARTITION = "rejected"
MAX_PROBLEMS = 50
MAX_TEXT = 200  # client_request_id and owner come from the message: bounded like a field path


class RejectedSubmission(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    source: str  # "queue"
    client_request_id: str = ""
    owner: str = ""
    error: str = ""
    problems: list[dict[str, Any]] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)

    @classmethod
    def new(cls, **fields: Any) -> RejectedSubmission:
        fields["problems"] = [
            # Problems repeat what was sent: a package URL may carry a token (user:pass@).
            {
                "field": scrub(str(p.get("field", ""))[:200]),
                "message": scrub(str(p.get("message", ""))[:1000]),
            }
            for p in fields.get("problems", [])[:MAX_PROBLEMS]
            if isinstance(p, dict)
        ]
        for name in ("client_request_id", "owner"):
            fields[name] = str(fields.get(name) or "")[:MAX_TEXT]
        fields["error"] = str(fields.get("error") or "")[:1000]
        return cls(id="r" + secrets.token_hex(5), **fields)

    def to_entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": PARTITION,
            "RowKey": self.id,
            "CreatedAt": self.created_at,
            "Owner": self.owner,
            **doc_properties(self.model_dump_json(), f"rejected submission {self.id}"),
        }

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> RejectedSubmission:
        return cls.model_validate_json(doc_of(entity))

    def summary(self) -> dict[str, Any]:
        """As GET /api/builds?state=rejected lists it."""
        return {
            "id": self.id,
            "name": "",
            "owner": self.owner,
            "project": "",
            "state": "rejected",
            "stage": "",
            "created_at": self.created_at.isoformat(),
            "updated_at": self.created_at.isoformat(),
            "source": self.source,
            "client_request_id": self.client_request_id,
            "error": self.error,
            "problems": self.problems,
        }
