"""How a refused request is reported: a list of problems, each naming a field and what to do."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError


class Problem(BaseModel):
    """One thing wrong with a request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(
        description=(
            "Where the problem is, as a path into the request such as 'python.packages[2]' or "
            "'data[0].destination'; '' means the request as a whole."
        ),
        examples=["data[0].destination"],
    )
    message: str = Field(
        description="What is wrong and how to fix it, in a sentence.",
        examples=["'/etc/data' is not inside the data disk mount point /datadrive"],
    )


class ErrorBody(BaseModel):
    """The body of every error response."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    error: str = Field(
        description="A short summary: 'invalid request', 'request too large', 'not found', ...",
        examples=["invalid request"],
    )
    problems: list[Problem] = Field(
        default_factory=list,
        description="Every problem found in the request (empty for errors not about the body).",
    )


class RequestRejected(Exception):
    """A request the API refuses; carries the HTTP status and the body to answer with."""

    http_status = 400
    error = "invalid request"

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field or '(request)'}: {p.message}" for p in problems))
        self.problems = problems

    def to_body(self) -> dict[str, Any]:
        """The JSON-ready error body: {"error": ..., "problems": [{"field", "message"}]}."""
        return ErrorBody(error=self.error, problems=self.problems).model_dump(mode="json")


class RequestInvalid(RequestRejected):
    """The request is not valid JSON or breaks a rule; `problems` lists every rule it breaks."""


class RequestTooLarge(RequestRejected):
    """The request body is larger than the API accepts."""

    http_status = 413
    error = "request too large"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            [Problem(field="", message=f"the request is {size} bytes; the limit is {limit} bytes")]
        )
        self.size = size
        self.limit = limit


CROSS_FIELD_ERROR = "cross_field"


def cross_field_error(problems: list[tuple[str, str]]) -> PydanticCustomError:
    """An error a model validator raises to report several problems at sub-fields at once.

    Each problem is (path relative to the model, message); parse_build_request expands them.
    """
    summary = "; ".join(f"{path}: {message}" for path, message in problems)
    return PydanticCustomError(
        CROSS_FIELD_ERROR, "{summary}", {"summary": summary, "problems": problems}
    )
