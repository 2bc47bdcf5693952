"""Queue trigger listener with the real host's polling, retry and poison-queue behaviour."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass

from azure.core.exceptions import ResourceNotFoundError
from azure.functions.queue import QueueMessage as TriggerMessage
from azure.storage.queue import QueueMessage as StoredMessage

from localcloud.funchost.appindex import FunctionSpec
from localcloud.funchost.hostconfig import MIN_POLLING_INTERVAL, QueueOptions
from localcloud.funchost.invoke import Invoker
from localcloud.funchost.storage import QueueClients, decode_body

log = logging.getLogger("localcloud.funchost")

# While a function runs its message stays invisible: the host receives it for 10 minutes and
# renews at half that, as the WebJobs SDK does.
PROCESSING_VISIBILITY = 600
RENEW_EVERY = PROCESSING_VISIBILITY / 2
POISON_SUFFIX = "-poison"


@dataclass
class _Receipt:
    """The current pop receipt of a message in flight (renewals replace it)."""

    value: str


class QueueListener:
    """Polls one queue for one function.

    Polling starts at 100 ms and doubles (randomized) up to maxPollingInterval while the queue is
    empty; a message found or `wake()` brings it back to fast polling. At most batchSize +
    newBatchThreshold messages are in flight; a new batch is fetched when in-flight messages drop
    to newBatchThreshold.
    """

    def __init__(
        self, spec: FunctionSpec, options: QueueOptions, clients: QueueClients, invoker: Invoker
    ) -> None:
        assert spec.queue_name and spec.connection
        self.spec = spec
        self.queue_name: str = spec.queue_name
        self._connection: str = spec.connection
        self._options = options
        self._clients = clients
        self._invoker = invoker
        self._client = clients.get(spec.connection, spec.queue_name)
        self._wake = asyncio.Event()
        self._capacity = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._delay = MIN_POLLING_INTERVAL
        self._stopping = False

    def wake(self) -> None:
        """Poll now and return to fast polling (something may have been sent to this queue)."""
        self._delay = MIN_POLLING_INTERVAL
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            if len(self._in_flight) > self._options.new_batch_threshold:
                self._capacity.clear()
                await self._capacity.wait()
                continue
            self._wake.clear()
            messages = await self._receive_batch()
            for message in messages:
                task = asyncio.create_task(self._process(message))
                self._in_flight.add(task)
                task.add_done_callback(self._finished)
            if messages:
                self._delay = MIN_POLLING_INTERVAL
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._delay)
            # Randomized exponential backoff, as the host's RandomizedExponentialBackoffStrategy.
            grown = self._delay * 2 * random.uniform(0.8, 1.2)
            self._delay = min(max(grown, MIN_POLLING_INTERVAL), self._options.max_polling_interval)

    async def stop(self, grace: float = 10) -> None:
        """Stop polling and give messages in flight `grace` seconds to finish."""
        self._stopping = True
        self._wake.set()
        self._capacity.set()
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=grace)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._capacity.set()

    async def _receive_batch(self) -> list[StoredMessage]:
        try:
            pages = self._client.receive_messages(
                messages_per_page=self._options.batch_size,
                max_messages=self._options.batch_size,
                visibility_timeout=PROCESSING_VISIBILITY,
            )
            return [m async for m in pages]
        except ResourceNotFoundError:
            return []  # the queue does not exist yet: the real host waits for it too
        except Exception as err:
            log.warning("polling queue %s failed: %s", self.queue_name, type(err).__name__)
            return []

    async def _process(self, stored: StoredMessage) -> None:
        receipt = _Receipt(stored.pop_receipt or "")
        if stored.dequeue_count and stored.dequeue_count > self._options.max_dequeue_count:
            await self._move_to_poison(stored, receipt)
            return
        renewer = asyncio.create_task(self._keep_invisible(stored, receipt))
        try:
            await self._invoker.invoke(self.spec, self._trigger_message(stored))
        except Exception:
            renewer.cancel()
            await self._after_failure(stored, receipt)
        else:
            renewer.cancel()
            await self._client.delete_message(stored.id, receipt.value)

    def _trigger_message(self, stored: StoredMessage) -> TriggerMessage:
        body = decode_body(stored.content, self._options.message_encoding)
        return TriggerMessage(
            id=stored.id,
            body=body,
            dequeue_count=stored.dequeue_count,
            insertion_time=stored.inserted_on,
            expiration_time=stored.expires_on,
            time_next_visible=stored.next_visible_on,
            pop_receipt=stored.pop_receipt,
        )

    async def _keep_invisible(self, stored: StoredMessage, receipt: _Receipt) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            updated = await self._client.update_message(
                stored.id, receipt.value, visibility_timeout=PROCESSING_VISIBILITY
            )
            receipt.value = updated.pop_receipt or receipt.value

    async def _after_failure(self, stored: StoredMessage, receipt: _Receipt) -> None:
        try:
            if (stored.dequeue_count or 0) >= self._options.max_dequeue_count:
                await self._move_to_poison(stored, receipt)
            else:
                await self._client.update_message(
                    stored.id,
                    receipt.value,
                    visibility_timeout=int(self._options.visibility_timeout),
                )
        except Exception as err:
            # The message becomes visible again when its processing lease runs out.
            log.warning("releasing a message of %s failed: %s", self.queue_name, type(err).__name__)

    async def _move_to_poison(self, stored: StoredMessage, receipt: _Receipt) -> None:
        poison = self.queue_name + POISON_SUFFIX
        log.warning(
            "Message %s has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
            stored.id,
            self._options.max_dequeue_count,
            poison,
        )
        client = await self._clients.ensure_queue(self._connection, poison)
        await client.send_message(stored.content)  # the stored text, still encoded
        await self._client.delete_message(stored.id, receipt.value)
