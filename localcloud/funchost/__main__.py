"""`python -m localcloud.funchost --app-dir DIR --port 7071`: run an app as `func start` would."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from localcloud.funchost.appindex import AppLoadError
from localcloud.funchost.host import FunctionsHost, run_until_signalled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud.funchost", description=__doc__)
    parser.add_argument(
        "--app-dir", type=Path, default=Path.cwd(), help="folder of function_app.py"
    )
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--bind", default="127.0.0.1")
    # Recorded on the command line, so that `localcloud down` finds the host by its folder; the
    # host keys and the sign-in key live in <state-dir>/funchost.
    parser.add_argument("--state-dir", type=Path, help="the localcloud state folder, if any")
    parser.add_argument(
        "--auth-settings",
        type=Path,
        help="App Service authentication: an authsettingsV2 JSON document (default: off)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stdout,
        level=logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
    )
    # The Azure SDK logs every HTTP request at INFO; that is noise here and could show URLs.
    logging.getLogger("azure").setLevel(logging.WARNING)
    try:
        secrets_dir = args.state_dir / "funchost" if args.state_dir else None
        host = FunctionsHost(args.app_dir, args.port, args.bind, secrets_dir, args.auth_settings)
    except (AppLoadError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    asyncio.run(run_until_signalled(host))
    return 0


if __name__ == "__main__":
    sys.exit(main())
