"""The two kinds of failure a step can have. Everything else is mapped to one of them."""

from __future__ import annotations


class StepError(Exception):
    """Base of the errors a step raises on purpose."""


class TemporaryError(StepError):
    """Retry after a delay: the cause may go away (a VM booting, throttling, a network blip)."""

    def __init__(self, message: str, retry_after: float = 10.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(StepError):
    """Stop and report: retrying cannot help (bad input, a failed notebook, a refused operation)."""
