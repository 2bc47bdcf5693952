"""From the stored workstation to what the API shows (no secrets in either)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.costguard.prices import default_prices
from shared.settings import Settings
from shared.ssh.keys import KeyStore
from shared.ssh.keyvault import download_command
from shared.steps.verify import JUPYTER_PORT
from shared.workstations import usage
from shared.workstations.machine import WsState
from shared.workstations.record import Workstation

TUNNEL_LOCAL_PORT = 7005  # as a kept build VM's tunnel: ssh -N -L 7005:localhost:8889


def summary(ws: Workstation, now: datetime) -> dict[str, Any]:
    hours = usage.hours_used(ws.usage, now)
    return {
        "id": ws.id,
        "owner": ws.owner,
        "state": ws.state.value,
        "size": ws.spec.size,
        "image_source": ws.spec.image_source,
        "hours_this_month": round(hours, 3),
        "monthly_hours": ws.spec.monthly_hours,
        "created_at": ws.created_at.isoformat(),
        "updated_at": ws.updated_at.isoformat(),
    }


def status(ws: Workstation, now: datetime, settings: Settings, keys: KeyStore) -> dict[str, Any]:
    """Everything a person needs: state, why it stopped, hours and cost, and how to connect."""
    hours = usage.hours_used(ws.usage, now)
    hourly = default_prices().vm_per_hour(ws.spec.size)
    body = summary(ws, now)
    body.update(
        {
            "image_id": ws.spec.image_id,
            "data_disk": _data_disk(ws),
            "autostop": ws.spec.autostop,
            "idle_minutes": ws.spec.idle_minutes,
            "quota_hours_left": None
            if ws.spec.monthly_hours is None
            else round(max(0.0, ws.spec.monthly_hours - hours), 3),
            "quota_reached": usage.quota_blocks_start(ws, now),
            "cost_this_month": None if hourly is None else round(hours * hourly, 2),
            "currency": "USD",
            "stop_reason": ws.stop_reason,
            "last_check": ws.last_check,
            "error": ws.error,
            "events": [e.model_dump(mode="json") for e in ws.events[-20:]],
            "connection": _connection(ws, settings, keys)
            if ws.state == WsState.RUNNING and ws.address
            else None,
        }
    )
    return body


def _connection(ws: Workstation, settings: Settings, keys: KeyStore) -> dict[str, str]:
    """The ssh and tunnel commands with the pinned host key line: the first connection is
    checked against the key the controller made, never trusted blindly."""
    key = f"~/.ssh/labimage-{ws.id}"
    known_hosts = f"~/.ssh/labimage-{ws.id}.known_hosts"
    host_key = " ".join(keys.load(ws.id, "host").public_line.split()[:2])
    user, address = ws.spec.admin_username, ws.address
    forward = f"{TUNNEL_LOCAL_PORT}:localhost:{JUPYTER_PORT}"
    ssh = f"ssh -i {key} -o StrictHostKeyChecking=yes -o UserKnownHostsFile={known_hosts}"
    if settings.key_vault_url:
        fetch = download_command(settings.key_vault_url, ws.id, key)
        key_help = f"fetch your private key from Key Vault: {fetch}"
    else:
        key_help = f"the private key is {ws.id}.client in the controller's key folder"
    return {
        "address": str(address),
        "username": user,
        "key": key_help,
        "known_hosts_line": f"{address} {host_key}",
        "known_hosts_file": known_hosts,
        "ssh_command": f"{ssh} {user}@{address}",
        "tunnel_command": f"{ssh} -N -L {forward} {user}@{address}",
        "jupyter_url": f"http://localhost:{TUNNEL_LOCAL_PORT}/",
    }


def month_costs(workstations: list[Workstation], now: datetime) -> dict[str, Any]:
    """This month's running hours and compute cost per workstation (GET /api/costs)."""
    prices = default_prices()
    rows: list[dict[str, Any]] = []
    for ws in workstations:
        if ws.state == WsState.DELETED and usage.current(ws.usage, now).hours == 0:
            continue
        hours = usage.hours_used(ws.usage, now)
        hourly = prices.vm_per_hour(ws.spec.size)
        rows.append(
            {
                "id": ws.id,
                "owner": ws.owner,
                "state": ws.state.value,
                "size": ws.spec.size,
                "hours_this_month": round(hours, 3),
                "monthly_hours": ws.spec.monthly_hours,
                "cost_this_month": None if hourly is None else round(hours * hourly, 2),
            }
        )
    known = [r["cost_this_month"] for r in rows if r["cost_this_month"] is not None]
    return {
        "month": usage.month_of(now),
        "hours": round(sum(r["hours_this_month"] for r in rows), 3),
        "cost": round(sum(known), 2),
        "currency": "USD",
        "workstations": rows,
    }


def _data_disk(ws: Workstation) -> dict[str, Any] | None:
    """Where the image's data disk is mounted, and the size asked when larger than the
    image's (None: the image's own size)."""
    if ws.spec.data_disk_mount is None:
        return None
    mount_point, filesystem = ws.spec.data_disk_mount
    return {
        "lun": ws.spec.data_disk_lun,
        "mount_point": mount_point,
        "filesystem": filesystem,
        "size_gb": ws.spec.data_disk_gb,
    }
