"""Build state in Table storage and stage messages on queues, against the real Azurite."""

from __future__ import annotations

import pytest

from shared.bus import StageMessage
from shared.runtime import Runtime
from shared.state.machine import Stage
from shared.state.record import Build, BuildState
from shared.state.store import ConcurrentUpdate


def _build(build_id: str = "btest00001", **changes: object) -> Build:
    base = Build(id=build_id, request={"name": "x", "owner": "o"}, owner="o", token="t1")
    return base.model_copy(update=changes)


def test_a_stale_etag_loses_and_the_first_writer_wins(runtime: Runtime) -> None:
    store = runtime.store
    created = store.create(_build())
    first = store.get("btest00001")
    second = store.get("btest00001")
    store.replace(first, first.build.model_copy(update={"stage": Stage.MOUNT}))
    with pytest.raises(ConcurrentUpdate):
        store.replace(second, second.build.model_copy(update={"stage": Stage.INSTALL}))
    assert store.get("btest00001").build.stage == Stage.MOUNT
    assert created.etag != store.get("btest00001").etag


def test_large_records_round_trip(runtime: Runtime) -> None:
    """Requests up to 64 KiB and long histories exceed one Table property; nothing is lost."""
    big = {"name": "x", "owner": "o", "blob": "é" * 70_000}
    runtime.store.create(_build(request=big))
    assert runtime.store.get("btest00001").build.request == big


def test_list_filters_by_state_and_owner_and_pages(runtime: Runtime) -> None:
    for i in range(5):
        state = BuildState.FAILED if i % 2 else BuildState.RUNNING
        runtime.store.create(_build(f"bpage0000{i}", owner="ann" if i < 4 else "bob", state=state))
    page = runtime.store.list(owner="ann", page_size=2)
    seen = [b.id for b in page.builds]
    while page.next_token:
        page = runtime.store.list(owner="ann", page_size=2, page_token=page.next_token)
        seen += [b.id for b in page.builds]
    assert sorted(seen) == ["bpage00000", "bpage00001", "bpage00002", "bpage00003"]
    failed = runtime.store.list(state="failed", page_size=50).builds
    assert sorted(b.id for b in failed) == ["bpage00001", "bpage00003"]


def test_messages_are_base64_and_can_be_delayed(runtime: Runtime) -> None:
    bus = runtime.bus
    bus.send(StageMessage("b1", Stage.MOUNT, "tok"))
    bus.send(StageMessage("b2", Stage.MOUNT, "tok"), delay_s=30)
    client = bus.client("build-mount")
    visible = list(client.receive_messages(max_messages=10))
    assert [StageMessage.from_json(m.content).build_id for m in visible] == ["b1"]
    assert client.get_queue_properties().approximate_message_count == 2
