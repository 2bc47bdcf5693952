"""`labimage rebuild` and `labimage diff`: exact rebuilds from a manifest, and what changed
between two builds."""

from __future__ import annotations

import argparse
import json
import re
import uuid
from typing import Any

from rich.table import Table
from rich.text import Text

from labimage_cli.client import ApiClient
from labimage_cli.commands import Consoles, InvalidRequest, follow_to_end, print_json
from labimage_cli.exit_codes import ExitCode
from labimage_cli.safe_text import clean_str, plain

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def manifest_of(client: ApiClient, build_or_manifest: str) -> str:
    """The manifest digest itself, or the one a build's status links to."""
    if _DIGEST.match(build_or_manifest):
        return build_or_manifest
    status = client.status(build_or_manifest)
    digest = (status.get("manifest") or {}).get("sha256")
    if not digest:
        raise InvalidRequest(
            f"build {build_or_manifest} has no manifest (it is recorded after verify)",
            [{"field": "id", "message": f"the build is {status.get('state')}"}],
        )
    return str(digest)


def cmd_rebuild(client: ApiClient, consoles: Consoles, args: argparse.Namespace) -> ExitCode:
    digest = manifest_of(client, args.source)
    body: dict[str, Any] = {
        "from_manifest": digest,
        "data": "latest" if args.data_latest else "exact",
    }
    if args.name:
        body["name"] = args.name
    if args.image_name:
        body["image_name"] = args.image_name
    key = args.idempotency_key or str(uuid.uuid4())
    accepted = client.submit(json.dumps(body).encode(), key)
    consoles.out.print(
        Text.assemble(
            "rebuild ", plain(accepted["id"], "bold"), " of manifest ", plain(digest[:12])
        )
    )
    consoles.out.print(plain(f"idempotency key: {key}"), highlight=False, soft_wrap=True)
    consoles.out.print(plain(f"status: {accepted['status_url']}"), highlight=False, soft_wrap=True)
    if not args.wait:
        return ExitCode.OK
    return follow_to_end(
        client, accepted["id"], consoles, interval_s=args.interval, timeout_s=args.timeout
    )


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return clean_str(str(value.get("md5") or value.get("sha256") or json.dumps(value)))[:40]
    return clean_str(str(value))[:60]


def changes_table(changes: list[dict[str, Any]]) -> Table:
    table = Table(expand=False)
    for column in ("kind", "name", "change", "before", "after"):
        table.add_column(column, overflow="fold")
    for change in changes:
        table.add_row(
            plain(change.get("kind", "")),
            plain(change.get("name", "")),
            plain(change.get("change", "")),
            plain(_value(change.get("before"))),
            plain(_value(change.get("after"))),
        )
    return table


def cmd_diff(client: ApiClient, consoles: Consoles, args: argparse.Namespace) -> ExitCode:
    a, b = manifest_of(client, args.a), manifest_of(client, args.b)
    diff = client.manifest_diff(a, b)
    if args.json:
        print_json(consoles.out, diff)
    elif diff.get("equal"):
        consoles.out.print(f"the environments of {a[:12]} and {b[:12]} are the same")
    else:
        consoles.out.print(changes_table(diff.get("changes") or []))
    return ExitCode.OK


def add_commands(command: Any) -> None:
    """Register rebuild and diff with main's `command(name, handler, help)`."""
    p = command(
        "rebuild",
        cmd_rebuild,
        "rebuild exactly what a build's manifest records: same base image version, the locked "
        "packages, the same blobs (refused if one changed) and commits",
    )
    p.add_argument("source", help="a build id, or a manifest's sha256")
    p.add_argument(
        "--data-latest",
        action="store_true",
        help="take the blobs as they are now instead of refusing",
    )
    p.add_argument("--name", help="the new build's name (default: the original's)")
    p.add_argument("--image-name", help="the image to capture (default: '<original>-r<time>')")
    p.add_argument("--idempotency-key", help="as for submit")
    p.add_argument("--wait", action="store_true", help="then follow it as `watch` does")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    p.add_argument("--timeout", type=float, help="give up watching after this many seconds")

    p = command(
        "diff",
        cmd_diff,
        "what changed between two builds: packages added, removed, upgraded; data; commits",
    )
    p.add_argument("a", help="the older build id or manifest sha256")
    p.add_argument("b", help="the newer build id or manifest sha256")
    p.add_argument("--json", action="store_true", help="print JSON")
