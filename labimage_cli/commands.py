"""The labimage subcommands. Each takes the client, the consoles and its arguments, prints, and
returns an ExitCode; API and connection errors propagate to main(), which maps them to codes."""

from __future__ import annotations

import argparse
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from labimage_cli.client import ApiClient, ApiError
from labimage_cli.exit_codes import ExitCode
from labimage_cli.render import (
    generic,
    print_builds,
    print_events,
    print_result,
    problems_table,
    stage_table,
)
from labimage_cli.safe_text import plain
from labimage_cli.watch import watch_build
from shared.models.parse import parse_build_request
from shared.models.problems import RequestRejected


@dataclass(frozen=True)
class Consoles:
    out: Console  # results
    err: Console  # problems and errors


class InvalidRequest(Exception):
    """The request file cannot be read or breaks a rule; nothing was sent."""

    def __init__(self, summary: str, problems: list[dict[str, str]]) -> None:
        super().__init__(summary)
        self.summary = summary
        self.problems = problems


def outcome_code(status: dict[str, Any]) -> ExitCode:
    """3 for a failed or cancelled build, 0 otherwise."""
    return ExitCode.BUILD_FAILED if status.get("state") in ("failed", "cancelled") else ExitCode.OK


def validate_request_file(path: Path) -> bytes:
    """The file's bytes once they pass the same validation as the API; else InvalidRequest."""
    try:
        body = path.read_bytes()
    except OSError as error:
        raise InvalidRequest(f"cannot read {path}: {error.strerror or error}", []) from None
    try:
        parse_build_request(body)
    except RequestRejected as rejected:
        problems = [p.model_dump() for p in rejected.problems]
        raise InvalidRequest(f"{path} is not a valid build request", problems) from None
    return body


def submit_request(
    client: ApiClient, path: Path, consoles: Consoles, idempotency_key: str | None = None
) -> dict[str, Any]:
    """Validate `path` locally, then POST it with an idempotency key (a new one unless given,
    so a POST sent again after a lost answer finds its build); prints and returns {id,
    status_url}.

    Raises InvalidRequest before anything is sent, ApiError/ApiUnreachable from the POST.
    """
    body = validate_request_file(path)
    key = idempotency_key or str(uuid.uuid4())
    accepted: dict[str, Any] = client.submit(body, key)
    known = "state" in accepted  # the status of the build this key made earlier
    verb = " was already submitted with this key" if known else " accepted"
    consoles.out.print(Text.assemble("build ", plain(accepted["id"], "bold"), verb))
    consoles.out.print(plain(f"idempotency key: {key}"), highlight=False, soft_wrap=True)
    consoles.out.print(plain(f"status: {accepted['status_url']}"), highlight=False, soft_wrap=True)
    return accepted


def follow_to_end(client: ApiClient, build_id: str, consoles: Consoles, **options: Any) -> ExitCode:
    """Watch the build, print its result, and return the exit code of its outcome."""
    final = watch_build(client, build_id, consoles.out, **options)
    consoles.out.print()
    print_result(consoles.out, final)
    return outcome_code(final)


def cmd_submit(client: ApiClient, consoles: Consoles, args: argparse.Namespace) -> ExitCode:
    if args.queue:
        return submit_through_queue(client, consoles, args)
    accepted = submit_request(client, args.file, consoles, args.idempotency_key)
    if not args.wait:
        return ExitCode.OK
    return follow_to_end(client, accepted["id"], consoles, **_watch_options(args))


def submit_through_queue(
    client: ApiClient, consoles: Consoles, args: argparse.Namespace
) -> ExitCode:
    """Validate locally, send to the queue, print the answer; --wait then follows the build
    through the API."""
    from labimage_cli.queue_submit import QueueSubmitter

    body = validate_request_file(args.file)
    key = args.idempotency_key or str(uuid.uuid4())
    answer = QueueSubmitter.from_environment().submit(body, key)
    if answer.get("status") == "rejected":
        consoles.err.print(plain("the queue consumer refused the request", "bold red"))
        consoles.err.print(problems_table(answer.get("problems") or []))
        return ExitCode.INVALID_INPUT
    consoles.out.print(
        Text.assemble("build ", plain(str(answer.get("id", "")), "bold"), " accepted")
    )
    consoles.out.print(plain(f"status: {answer.get('status_url', '')}"), highlight=False)
    consoles.out.print(plain(f"idempotency key: {key}"), highlight=False, soft_wrap=True)
    if not args.wait:
        return ExitCode.OK
    return follow_to_end(client, str(answer["id"]), consoles, **_watch_options(args))


def cmd_watch(client: ApiClient, consoles: Consoles, args: argparse.Namespace) -> ExitCode:
    return follow_to_end(client, args.id, consoles, **_watch_options(args))


def cmd_status(client: ApiClient, consoles: Consoles, args: argparse.Namespace) -> ExitCode:
    status = client.status(args.id)
    if args.json:
        print_json(consoles.out, status)
    else:
        consoles.out.print(stage_table(status))
        if status.get("state") in ("succeeded", "failed", "cancelled"):
            print_result(consoles.out, status)
    return outcome_code(status)


def cmd_list(client: ApiClient, consoles: Consoles, args: argparse.Namespace) -> ExitCode:
    builds: list[dict[str, Any]] = []
    token = args.page_token
    while True:
        page = client.list_page(
            state=args.state, owner=args.owner, page_size=args.page_size, page_token=token
        )
        builds.extend(page.get("builds", []))
        token = page.get("next_page_token")
        if not token or not args.all:
            break
    if args.json:
        print_json(consoles.out, {"builds": builds, "next_page_token": token})
        return ExitCode.OK
    if builds:
        print_builds(consoles.out, builds, wide=args.wide)
        for refused in (b for b in builds if b.get("state") == "rejected"):
            why = f"{refused.get('id', '')}: {refused.get('error', '')}"
            consoles.out.print(plain(why, "bold"), highlight=False)
            consoles.out.print(problems_table(refused.get("problems") or []))
    else:
        consoles.out.print("no builds match")
    if token:
        consoles.out.print(
            plain(f"more builds: add --all, or --page-token {token}"),
            highlight=False,
            soft_wrap=True,
        )
    return ExitCode.OK


def cmd_cancel(client: ApiClient, consoles: Consoles, args: argparse.Namespace) -> ExitCode:
    accepted = client.cancel(args.id)
    consoles.out.print(
        plain(
            f"cancel requested for build {accepted['id']}: it stops at its next safe point and "
            f"cleans up; follow it with `labimage watch {accepted['id']}`"
        ),
        highlight=False,
    )
    return ExitCode.OK


def cmd_events(client: ApiClient, consoles: Consoles, args: argparse.Namespace) -> ExitCode:
    status = client.status(args.id)
    events = status.get("events", [])
    if args.json:
        print_json(consoles.out, events)
    else:
        print_events(consoles.out, events, wide=args.wide)
    return ExitCode.OK


def cmd_costs(client: ApiClient, consoles: Consoles, args: argparse.Namespace) -> ExitCode:
    try:
        costs = client.costs(args.date_from, args.date_to)
    except ApiError as error:
        if error.status != 404:
            raise
        consoles.err.print(
            plain(
                f"the server at {client.base_url} has no cost endpoint (GET /api/costs answered "
                "404); it runs a labimage version without cost figures"
            ),
            highlight=False,
        )
        return ExitCode.OTHER_ERROR
    if args.json:
        print_json(consoles.out, costs)
    elif consoles.out.is_terminal:
        consoles.out.print(generic(costs))
    else:  # to a pipe or a file: as wide as it needs, never cut
        consoles.out.print(generic(costs), width=PIPE_WIDTH)
    return ExitCode.OK


def cmd_init(client: ApiClient, consoles: Consoles, args: argparse.Namespace) -> ExitCode:
    from labimage_cli.wizard import run_init  # the wizard imports this module

    run_init(args, consoles.out)
    return ExitCode.OK


PIPE_WIDTH = 10_000


def print_json(console: Console, value: Any) -> None:
    """The API's JSON as it came, indented, never wrapped or coloured."""
    console.print(json.dumps(value, indent=2), markup=False, highlight=False, soft_wrap=True)


def _watch_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"interval_s": args.interval, "timeout_s": args.timeout}
