"""`labimage`: submit builds to the labimage API and follow them from a terminal."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from labimage_cli import commands, image_commands, manifests, wizard, workstations
from labimage_cli.client import (
    API_URL_ENV,
    DEFAULT_API_URL,
    FUNCTION_KEY_ENV,
    TOKEN_ENV,
    ApiClient,
    ApiError,
    ApiUnreachable,
    InvalidApiUrl,
    summary_of,
)
from labimage_cli.commands import Consoles, InvalidRequest
from labimage_cli.exit_codes import EXIT_CODES_HELP, ExitCode
from labimage_cli.queue_submit import NoQueue, QueueTimedOut
from labimage_cli.render import problems_table
from labimage_cli.safe_text import clean_str, plain
from labimage_cli.watch import WatchTimedOut

Command = Callable[[ApiClient, Consoles, argparse.Namespace], ExitCode]

DESCRIPTION = """\
Submit image builds to the labimage API and follow them.

The API address comes from --api-url or LABIMAGE_API_URL (default http://127.0.0.1:7071,
the local Functions host). You act as yourself with a sign-in token from --token or
LABIMAGE_TOKEN (on Azure: az account get-access-token --resource <the API's app id URI>
--query accessToken -o tsv; on localcloud: python -m localcloud token --name <you>), or as an
administrator with a function key from --function-key or LABIMAGE_FUNCTION_KEY (automation;
the key wins when both are set). Neither is ever printed; prefer the variables, since command
lines are visible to other users.
"""


def build_parser() -> argparse.ArgumentParser:
    # The connection flags are accepted before or after the subcommand; SUPPRESS keeps a
    # subcommand's absent flag from overwriting one given before it.
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--api-url",
        default=argparse.SUPPRESS,
        help=f"the API's base URL (env {API_URL_ENV}; default {DEFAULT_API_URL})",
    )
    connection.add_argument(
        "--function-key",
        default=argparse.SUPPRESS,
        help=f"a function key: act as an administrator (env {FUNCTION_KEY_ENV})",
    )
    connection.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        help=f"your sign-in (bearer) token: act as yourself (env {TOKEN_ENV})",
    )
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="labimage",
        description=DESCRIPTION,
        epilog=EXIT_CODES_HELP + "  130 interrupted (Ctrl-C); the build itself goes on\n",
        formatter_class=formatter,
        parents=[connection],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Command | None, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EXIT_CODES_HELP,
            formatter_class=formatter,
            parents=[connection],
        )
        p.set_defaults(handler=handler)
        return p

    p = command(
        "submit",
        commands.cmd_submit,
        "validate a build request locally (every problem with its field path), then submit it",
    )
    p.add_argument("file", type=Path, help="the build request (JSON)")
    p.add_argument("--wait", action="store_true", help="then follow it as `watch` does")
    p.add_argument(
        "--queue",
        action="store_true",
        help="send it to the build-requests queue (LABIMAGE_QUEUE_CONNECTION or "
        "LABIMAGE_QUEUE_URL) and wait for the answer on a reply queue",
    )
    p.add_argument(
        "--idempotency-key",
        help="submitting again with the same key gives the same build (default: a new key, "
        "printed, kept for the retries of this command)",
    )
    _watch_flags(p)

    p = command("watch", commands.cmd_watch, "follow a build live until it ends; show its result")
    p.add_argument("id", help="build id")
    _watch_flags(p)

    p = command("status", commands.cmd_status, "one snapshot of a build")
    p.add_argument("id", help="build id")
    p.add_argument("--json", action="store_true", help="print the API's JSON as it came")

    p = command("list", commands.cmd_list, "list builds, newest first")
    p.add_argument(
        "--state",
        choices=["queued", "running", "succeeded", "failed", "cancelled", "rejected"],
        help="rejected: queue submissions that were refused, with their problems",
    )
    p.add_argument("--owner", help="only builds of this owner (the request's owner field)")
    p.add_argument("--page-size", type=int, help="builds per page (1-100; the API's default 50)")
    p.add_argument("--page-token", help="start at this page (printed after a partial list)")
    p.add_argument("--all", action="store_true", help="follow every page to the end")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--wide", action="store_true", help="every column, even past the width")

    p = command("cancel", commands.cmd_cancel, "ask a build to stop and clean up")
    p.add_argument("id", help="build id")

    p = command("events", commands.cmd_events, "what happened in a build, in order")
    p.add_argument("id", help="build id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--wide", action="store_true", help="every column, even past the width")

    p = command("init", commands.cmd_init, "write a build request from a few answers")
    wizard.add_arguments(p)

    image_commands.add_arguments(command)

    p = command("costs", commands.cmd_costs, "estimated spend and savings by owner and project")
    p.add_argument("--from", dest="date_from", metavar="DATE", help="first day (YYYY-MM-DD)")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="last day (YYYY-MM-DD)")
    p.add_argument("--json", action="store_true", help="print JSON")
    manifests.add_commands(command)

    workstations.add_commands(command, connection)
    return parser


def _watch_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    p.add_argument("--timeout", type=float, help="give up watching after this many seconds")


def client_from(args: argparse.Namespace) -> ApiClient:
    """The client the flags and environment describe (flags win)."""
    url = getattr(args, "api_url", None) or os.environ.get(API_URL_ENV) or DEFAULT_API_URL
    key = getattr(args, "function_key", None) or os.environ.get(FUNCTION_KEY_ENV) or None
    token = getattr(args, "token", None) or os.environ.get(TOKEN_ENV) or None
    return ApiClient(url, key, token=token)


def main(argv: Sequence[str] | None = None, consoles: Consoles | None = None) -> int:
    """Run one labimage command; returns its exit code (see EXIT_CODES_HELP)."""
    args = build_parser().parse_args(_values_attached(argv))
    consoles = consoles or Consoles(Console(), Console(stderr=True))
    handler: Command = args.handler
    return guarded(lambda: handler(client_from(args), consoles, args), consoles.err)


VALUE_FLAGS = ("--function-key", "--token", "--api-url")


def _values_attached(argv: Sequence[str] | None) -> list[str]:
    """`--function-key -Vj…` as `--function-key=-Vj…`: argparse takes a value that starts with
    a dash for another option, and a generated key can start with one."""
    given = list(sys.argv[1:] if argv is None else argv)
    attached: list[str] = []
    while given:
        word = given.pop(0)
        if word in VALUE_FLAGS and given:
            word = f"{word}={given.pop(0)}"
        attached.append(word)
    return attached


def guarded(action: Callable[[], int], err: Console) -> int:
    """Run `action`; print what went wrong on `err` and return the exit code it stands for."""
    try:
        return int(action())
    except InvalidRequest as invalid:
        err.print(plain(invalid.summary, "bold red"), highlight=False)
        if invalid.problems:
            err.print(problems_table(invalid.problems))
        err.print("nothing was sent", style="dim")
        return ExitCode.INVALID_INPUT
    except InvalidApiUrl as error:
        err.print(plain(error, "bold red"), highlight=False)
        return ExitCode.INVALID_INPUT
    except ApiUnreachable as error:
        err.print(plain(error, "bold red"), highlight=False)
        err.print(f"check --api-url / {API_URL_ENV} and that the Functions app is running")
        return ExitCode.API_UNREACHABLE
    except ApiError as error:
        return _report_api_error(error, err)
    except NoQueue as error:
        err.print(plain(error, "bold red"), highlight=False)
        return ExitCode.INVALID_INPUT
    except QueueTimedOut as error:
        err.print(plain(f"{error}; is the Functions app running?", "bold red"), highlight=False)
        return ExitCode.OTHER_ERROR
    except WatchTimedOut as timed_out:
        err.print(plain(f"stopped watching: {timed_out}"), highlight=False)
        return ExitCode.OTHER_ERROR
    except KeyboardInterrupt:
        err.print("interrupted; the build itself goes on")
        return 130


def _report_api_error(error: ApiError, err: Console) -> int:
    if error.status in (400, 413):
        refused = plain(f"the API refused the request ({error.status}): ", "bold red")
        err.print(refused.append(clean_str(summary_of(error.body))), highlight=False)
        if error.problems:
            err.print(problems_table(error.problems))
        return ExitCode.INVALID_INPUT
    if error.status == 401:
        err.print(
            f"the API refused the call ({error.status}): sign in with --token / {TOKEN_ENV}, "
            f"or use an administrator's --function-key / {FUNCTION_KEY_ENV}",
            style="bold red",
            highlight=False,
        )
        return ExitCode.OTHER_ERROR
    message = "; ".join(p["message"] for p in error.problems if p.get("message"))
    err.print(
        plain(
            f"the API answered {error.status} ({summary_of(error.body)})"
            + (f": {message}" if message else ""),
            "bold red",
        ),
        highlight=False,
    )
    return ExitCode.OTHER_ERROR


if __name__ == "__main__":
    sys.exit(main())
