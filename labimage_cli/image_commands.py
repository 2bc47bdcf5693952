"""`labimage images list|show|delete` and `labimage logs`: the images builds made, and the
guest job logs builds kept."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from labimage_cli.client import ApiClient
from labimage_cli.commands import Consoles, print_json
from labimage_cli.exit_codes import ExitCode
from labimage_cli.fit import Column, print_rows
from labimage_cli.render import parse_time
from labimage_cli.safe_text import clean_str, plain

IMAGE_COLUMNS = (
    Column("name", keep=True),
    Column("kind"),
    Column("state", keep=True),
    Column("build", keep=True),
    Column("request"),
    Column("owner"),
    Column("created"),
    Column("size GB"),
    Column("manifest"),
)
IMAGE_DROP_ORDER = ("manifest", "kind", "request", "created", "size GB", "owner")
LOG_COLUMNS = (Column("name", keep=True), Column("bytes"), Column("type"))


def _when(value: str | None) -> str:
    moment = parse_time(value)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment else "-"


def _row(image: dict[str, Any]) -> list[str]:
    size = image.get("size_gb")
    return [
        str(image.get("name", "")),
        str(image.get("kind", "")),
        str(image.get("state") or "-"),
        str(image.get("build_id") or "-"),
        str(image.get("request_name") or "-"),
        str(image.get("owner") or "-"),
        _when(image.get("created")),
        "-" if size is None else str(size),
        str(image.get("manifest_digest") or "-"),
    ]


def print_images(console: Console, images: list[dict[str, Any]], wide: bool = False) -> None:
    print_rows(
        console, IMAGE_COLUMNS, [_row(i) for i in images], drop_order=IMAGE_DROP_ORDER, wide=wide
    )


def cmd_images(client: ApiClient, consoles: Consoles, args: argparse.Namespace) -> ExitCode:
    action = args.images_action
    if action == "list":
        images = client.images().get("images", [])
        if args.json:
            print_json(consoles.out, {"images": images})
        elif images:
            print_images(consoles.out, images, wide=args.wide)
        else:
            consoles.out.print("no images made by labimage builds")
        return ExitCode.OK
    if action == "show":
        image = client.image(args.name)
        if args.json:
            print_json(consoles.out, image)
        else:
            print_images(consoles.out, [image], wide=True)
        return ExitCode.OK
    answer = client.delete_image(args.name)
    name = answer.get("name", args.name)
    note = f"deleting image {name}; `labimage images list` shows when it is gone"
    consoles.out.print(plain(note), highlight=False)
    return ExitCode.OK


def cmd_logs(client: ApiClient, consoles: Consoles, args: argparse.Namespace) -> ExitCode:
    if not args.job:
        entries = client.logs(args.id).get("logs", [])
        if args.json:
            print_json(consoles.out, entries)
        elif entries:
            keys = ("name", "bytes", "content_type")
            rows = [[str(e.get(k, "")) for k in keys] for e in entries]
            print_rows(consoles.out, LOG_COLUMNS, rows)
            consoles.out.print(
                plain(f"print one with: labimage logs {args.id} <name>"), highlight=False
            )
        else:
            consoles.out.print(
                plain(f"build {args.id} has no logs yet (they are copied before a VM is deleted)"),
                highlight=False,
            )
        return ExitCode.OK
    data = client.log(args.id, args.job)
    if args.output:
        Path(args.output).write_bytes(data)
        consoles.err.print(plain(f"{len(data)} bytes written to {args.output}"), highlight=False)
        return ExitCode.OK
    # A guest wrote this text: control characters never reach the terminal.
    text = clean_str(data.decode("utf-8", errors="replace"))
    consoles.out.file.write(text if text.endswith("\n") or not text else text + "\n")
    consoles.out.file.flush()
    return ExitCode.OK


def add_arguments(command: Any) -> None:
    """The `images` and `logs` subcommands, on the parser's subcommand factory `command`."""
    p = command("images", cmd_images, "images that labimage builds made: list, show, delete")
    actions = p.add_subparsers(dest="images_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every image you may see (all for administrators)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.add_argument("--wide", action="store_true", help="every column, even past the width")
    show = actions.add_parser("show", help="one image")
    show.add_argument("name", help="image name, or <gallery>:<definition>:<version>")
    show.add_argument("--json", action="store_true", help="print JSON")
    delete = actions.add_parser(
        "delete", help="delete an image a labimage build made (refused while a VM uses it)"
    )
    delete.add_argument("name", help="image name, or <gallery>:<definition>:<version>")

    p = command("logs", cmd_logs, "the guest job logs a build kept; one of them printed")
    p.add_argument("id", help="build id")
    p.add_argument("job", nargs="?", help="a log's name from the list (without it: the list)")
    p.add_argument("--json", action="store_true", help="the list as JSON")
    p.add_argument("-o", "--output", help="write the entry's bytes to this file instead")
