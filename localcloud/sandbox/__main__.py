"""`python -m localcloud.sandbox teardown --state-dir DIR`: remove what a state folder created."""

from __future__ import annotations

import argparse
from pathlib import Path

from localcloud.sandbox.layout import Layout
from localcloud.sandbox.teardown import teardown_state_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud.sandbox")
    commands = parser.add_subparsers(dest="command", required=True)
    teardown = commands.add_parser(
        "teardown", help="kill the sandboxes and remove the netns, loop devices, mounts, nft table"
    )
    teardown.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "teardown":
        # the subnet does not matter for teardown: names derive from the folder alone
        teardown_state_dir(Layout.of(args.state_dir, "10.213.0.0/16"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
