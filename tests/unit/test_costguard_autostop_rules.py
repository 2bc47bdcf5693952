"""Which VMs a scan queues: due and running ones only; malformed tags become problems."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.costguard.autostop import StopOrder, classify
from shared.costguard.inventory import VmInfo

NOW = datetime(2024, 1, 15, 18, 30, tzinfo=UTC)  # 19:30 Berlin, 13:30 New York, 03:30 Tokyo


def vm(name: str, tags: dict[str, str], power: str | None = "running") -> VmInfo:
    rid = f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/{name}"
    return VmInfo(rid, name, "rg", tags, "Standard_D2s_v5", power)


def test_exactly_the_due_running_vms_are_queued() -> None:
    vms = [
        vm("berlin", {"labimage-autostop": "19:00 Europe/Berlin"}),
        vm("newyork", {"labimage-autostop": "19:00 America/New_York"}),
        vm("tokyo", {"labimage-autostop": "03:00 Asia/Tokyo"}),
        vm(
            "exempt",
            {
                "labimage-autostop": "19:00 Europe/Berlin",
                "labimage-autostop-skip-until": "2024-01-15",
            },
        ),
        vm("off", {"labimage-autostop": "off"}),
        vm("gone", {"labimage-autostop": "19:00 Europe/Berlin"}, "deallocated"),
        vm("powered-off", {"labimage-autostop": "19:00 Europe/Berlin"}, "stopped"),
        vm("bad", {"labimage-autostop": "7pm Mars/Olympus"}),
        vm("untagged", {}),
    ]
    result, orders = classify(vms, NOW, timedelta(hours=6), None)
    assert sorted(o.vm_id.rsplit("/", 1)[1] for o in orders) == ["berlin", "powered-off", "tokyo"]
    assert result.already_stopped == 1
    assert result.in_scope == 7  # the malformed one is a problem, not in scope
    assert len(result.problems) == 1 and "/bad: " in result.problems[0]


def test_the_message_round_trips_and_carries_no_secret() -> None:
    order = StopOrder("/subscriptions/s/x", "autostop 19:00 UTC", NOW)
    assert StopOrder.from_json(order.to_json()) == order
    assert set(__import__("json").loads(order.to_json())) == {"vm_id", "rule", "due"}


def test_a_tzdata_folder_or_far_off_snooze_in_one_vms_tags_does_not_stop_the_scan() -> None:
    hostile = [
        vm("folder", {"labimage-autostop": "19:00 America"}),
        vm("subfolder", {"labimage-autostop": "19:00 America/Indiana"}),
        vm(
            "far",
            {
                "labimage-autostop": "19:00 Europe/Berlin",
                "labimage-autostop-snooze-until": "9999-12-31T23:59:59+00:00",
            },
        ),
        vm("early", {"labimage-autostop": "19:00", "labimage-autostop-snooze-until": "0001-01-01"}),
    ]
    due = vm("berlin", {"labimage-autostop": "19:00 Europe/Berlin"})
    result, orders = classify([*hostile, due], NOW, timedelta(hours=6), timedelta(hours=1))
    assert [o.vm_id for o in orders] == [due.id]
    assert sorted(p.split(": ")[0].rsplit("/", 1)[1] for p in result.problems) == [
        "early",
        "far",
        "folder",
        "subfolder",
    ]
