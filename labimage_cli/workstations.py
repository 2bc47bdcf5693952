"""`labimage ws ...`: workstations from a verified image (create, list, show, start, stop,
snooze, delete) and `ws ssh`, which runs the system ssh with the pinned host key and a tunnel to
the workstation's Jupyter, and prints the browser URL."""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import subprocess
from pathlib import Path
from typing import Any

from labimage_cli.client import ApiClient
from labimage_cli.commands import Consoles, InvalidRequest, print_json
from labimage_cli.exit_codes import ExitCode
from labimage_cli.render import generic
from labimage_cli.safe_text import plain

WS_ID = re.compile(r"^w[a-z0-9]{9}$")
JUPYTER = "/opt/labimage/env/bin/jupyter"
REMOTE_PORT = 8889
LOCAL_PORT = 7005


def add_commands(command: Any, connection: argparse.ArgumentParser) -> None:
    """The `ws` command and its subcommands; `command(name, handler, help)` makes a parser,
    `connection` holds the flags every command accepts."""
    ws = command("ws", None, "workstations: VMs from a verified image, one per owner")
    wsub = ws.add_subparsers(dest="ws_command", required=True, metavar="WS_COMMAND")

    def one(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = wsub.add_parser(
            name, help=help_text, description=help_text, parents=[connection]
        )
        p.set_defaults(handler=handler)
        return p

    p = one("create", cmd_create, "start a workstation (or one per owner with --owners)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--owner", help="whose workstation it is (your user name, unless admin)")
    who.add_argument("--owners", help="comma-separated owners: a batch (administrators)")
    image = p.add_mutually_exclusive_group(required=True)
    image.add_argument("--build", help="the image of the latest succeeded build of this name")
    image.add_argument("--image-id", help="a managed image id")
    image.add_argument("--gallery-version", help="a gallery image version id")
    p.add_argument("--size", help="VM size (default: the build's)")
    p.add_argument("--autostop", metavar="HH:MM", help="evening stop time (default 19:00)")
    p.add_argument("--time-zone", default="UTC", help="IANA zone of --autostop (default UTC)")
    p.add_argument("--no-autostop", action="store_true", help="no evening stop")
    p.add_argument("--idle-minutes", type=int, help="deallocate after this many idle minutes")
    p.add_argument("--monthly-hours", type=float, help="running hours allowed per month")
    p.add_argument("--data-disk-gb", type=int, help="a data disk larger than the image's (GB)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = one("list", cmd_list, "your workstations (all, for an administrator)")
    p.add_argument("--owner", help="only this owner's")
    p.add_argument("--state", help="only those in this state")
    p.add_argument("--json", action="store_true", help="print JSON")
    for name, handler, text in (
        ("show", cmd_show, "state, hours, cost and how to connect"),
        ("start", cmd_start, "start a stopped workstation (it is verified again)"),
        ("stop", cmd_stop, "deallocate a workstation"),
        ("delete", cmd_delete, "delete a workstation and everything of it"),
    ):
        p = one(name, handler, text)
        p.add_argument("id", help="workstation id")
        p.add_argument("--json", action="store_true", help="print JSON")
    p = one("snooze", cmd_snooze, "postpone tonight's stop by some hours")
    p.add_argument("id", help="workstation id")
    p.add_argument("--hours", type=int, required=True, help="how many hours")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = one("ssh", cmd_ssh, "ssh in with the pinned host key and a tunnel to Jupyter")
    p.add_argument("id", help="workstation id")
    p.add_argument("--key", type=Path, help="your private key (default ~/.ssh/labimage-<id>)")
    p.add_argument("--print", action="store_true", help="print the ssh command; run nothing")


def _id(value: str) -> str:
    if not WS_ID.match(value):
        raise InvalidRequest(f"{value!r} is not a workstation id (w and 9 letters or digits)", [])
    return value


def _show(consoles: Consoles, body: Any, as_json: bool) -> ExitCode:
    if as_json:
        print_json(consoles.out, body)
    else:
        consoles.out.print(generic(body))
    return ExitCode.OK


def cmd_create(client: ApiClient, consoles: Consoles, args: argparse.Namespace) -> ExitCode:
    image = (
        {"build": args.build}
        if args.build
        else {"image_id": args.image_id}
        if args.image_id
        else {"gallery_image_version_id": args.gallery_version}
    )
    body: dict[str, Any] = {"image": image}
    if args.no_autostop:
        body["autostop"] = {"enabled": False}
    elif args.autostop:
        body["autostop"] = {"time": args.autostop, "time_zone": args.time_zone}
    for field in ("size", "idle_minutes", "monthly_hours"):
        if getattr(args, field) is not None:
            body[field] = getattr(args, field)
    if args.data_disk_gb is not None:
        body["data_disk"] = {"size_gb": args.data_disk_gb}
    if args.owners:
        body["owners"] = [o.strip() for o in args.owners.split(",") if o.strip()]
        path = "/api/workstations:batch"
    else:
        body["owner"] = args.owner
        path = "/api/workstations"
    answer = client.request("POST", path, body=json.dumps(body).encode())
    return _show(consoles, answer, args.json)


def cmd_list(client: ApiClient, consoles: Consoles, args: argparse.Namespace) -> ExitCode:
    query = {"owner": args.owner, "state": args.state}
    answer = client.request("GET", "/api/workstations", query=query)
    return _show(consoles, answer, args.json)


def cmd_show(client: ApiClient, consoles: Consoles, args: argparse.Namespace) -> ExitCode:
    return _show(consoles, client.request("GET", f"/api/workstations/{_id(args.id)}"), args.json)


def _post(client: ApiClient, ws_id: str, action: str, query: dict[str, Any] | None = None) -> Any:
    return client.request("POST", f"/api/workstations/{_id(ws_id)}/{action}", body=b"", query=query)


def cmd_start(client: ApiClient, consoles: Consoles, args: argparse.Namespace) -> ExitCode:
    return _show(consoles, _post(client, args.id, "start"), args.json)


def cmd_stop(client: ApiClient, consoles: Consoles, args: argparse.Namespace) -> ExitCode:
    return _show(consoles, _post(client, args.id, "stop"), args.json)


def cmd_snooze(client: ApiClient, consoles: Consoles, args: argparse.Namespace) -> ExitCode:
    answer = _post(client, args.id, "snooze", {"hours": args.hours})
    return _show(consoles, answer, args.json)


def cmd_delete(client: ApiClient, consoles: Consoles, args: argparse.Namespace) -> ExitCode:
    answer = client.request("DELETE", f"/api/workstations/{_id(args.id)}")
    return _show(consoles, answer, args.json)


def ssh_command(connection: dict[str, Any], key: Path, known_hosts: Path, token: str) -> list[str]:
    """The system ssh, as an argument list: the key, only the pinned host key, the tunnel,
    and Jupyter started on the workstation's localhost with `token`."""
    remote = [
        JUPYTER,
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={REMOTE_PORT}",
        f"--IdentityProvider.token={token}",
    ]
    return [
        "ssh",
        "-i",
        str(key),
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-L",
        f"{LOCAL_PORT}:localhost:{REMOTE_PORT}",
        f"{connection['username']}@{connection['address']}",
        shlex.join(remote),  # the remote shell parses this one string
    ]


def cmd_ssh(client: ApiClient, consoles: Consoles, args: argparse.Namespace) -> ExitCode:
    ws_id = _id(args.id)
    status = client.request("GET", f"/api/workstations/{ws_id}")
    connection = status.get("connection") if isinstance(status, dict) else None
    if not connection:
        state = status.get("state") if isinstance(status, dict) else "?"
        consoles.err.print(plain(f"workstation {ws_id} is {state}: nothing to connect to"))
        return ExitCode.OTHER_ERROR
    ssh_dir = Path.home() / ".ssh"
    key = args.key or ssh_dir / f"labimage-{ws_id}"
    known_hosts = ssh_dir / f"labimage-{ws_id}.known_hosts"
    token = secrets.token_hex(24)
    command = ssh_command(connection, key, known_hosts, token)
    url = f"http://localhost:{LOCAL_PORT}/lab?token={token}"
    if args.print:
        consoles.out.print(shlex.join(command), markup=False, highlight=False, soft_wrap=True)
        consoles.out.print(plain(f"then open {url}"), highlight=False)
        return ExitCode.OK
    if not key.exists():
        consoles.err.print(plain(f"no private key at {key}: {connection.get('key', '')}"))
        return ExitCode.INVALID_INPUT
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    known_hosts.write_text(str(connection["known_hosts_line"]) + "\n")
    os.chmod(known_hosts, 0o600)
    consoles.out.print(plain(f"Jupyter will be at {url} (Ctrl-C ends it)"), highlight=False)
    return ExitCode.OK if subprocess.call(command) == 0 else ExitCode.OTHER_ERROR
