"""What a step receives and what it answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from shared.azure.clients import AzureClients
from shared.settings import Settings
from shared.state.record import Build

if TYPE_CHECKING:
    from shared.state.store import BuildStore


@dataclass(frozen=True)
class Done:
    """The stage did its part; `build` carries its outputs and markers."""

    build: Build
    note: str


@dataclass(frozen=True)
class Poll:
    """Long work is under way: run this stage again after `after_s` seconds."""

    build: Build
    after_s: float
    note: str


Outcome = Done | Poll


@dataclass
class StepContext:
    settings: Settings
    build: Build
    azure: AzureClients
    keys: Any  # shared.ssh.keys.KeyStore

    def store(self) -> BuildStore:
        """The build records (this build's, and earlier builds' a step asks about)."""
        from shared.state.store import BuildStore

        s = self.settings
        return BuildStore.from_connection_string(
            s.storage_connection, s.builds_table, self.azure.credential
        )

    def cancel_requested(self) -> bool:
        """Whether a cancel came in since this invocation loaded the build (read again from
        the table: a step that waits long inside one invocation asks between its waits)."""
        try:
            return self.store().get(self.build.id).build.cancel_requested
        except Exception:  # a failed look is no reason to stop; the next invocation sees it
            return False

    @cached_property
    def request(self) -> Any:
        from shared.models.request import BuildRequest

        return BuildRequest.model_validate(self.build.request)


Step = Callable[[StepContext], Awaitable[Outcome]]


@dataclass(frozen=True)
class Budget:
    """How long a stage may take and how many temporary failures it may absorb."""

    deadline: timedelta
    max_retries: int = 8
