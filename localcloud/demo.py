"""`make demo`: the seed request end to end on localcloud, with live progress and a report.

Starts localcloud, prepares the notebook repository and the Blob data the seed request names,
then does what `labimage submit --wait` does (local validation, submit, live stage table and
events, the final result) through the labimage_cli functions, adds the timings the speed report
needs (submit to end, VM create call to SSH answering) and tears down.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from labimage_cli.client import ApiClient
from labimage_cli.commands import Consoles, outcome_code, submit_request
from labimage_cli.main import guarded
from labimage_cli.render import format_duration, print_result, seconds_between
from labimage_cli.watch import watch_build
from localcloud.funchost.hostkeys import read_host_keys
from localcloud.instance import DEFAULT_STATE_DIR, REPO_ROOT, Layout, read_env_file
from localcloud.seed_content import seed_ooi
from localcloud.signals import terminate_like_interrupt
from shared.azure import images
from shared.azure.clients import AzureClients
from shared.settings import read_settings

SEED = REPO_ROOT / "examples" / "seed-request.json"
WATCH_TIMEOUT_S = 3600


# App Service authentication as the Bicep deploys it (infra/authsettings.json).
AUTH_SETTINGS = REPO_ROOT / "infra" / "authsettings.json"


def localcloud(command: str, state_dir: Path) -> int:
    flags = [f"--auth-settings={AUTH_SETTINGS}"] if command == "up" else []
    return subprocess.call(
        [sys.executable, "-m", "localcloud", command, "--state-dir", str(state_dir), *flags]
    )


def run_build(client: ApiClient, request: Path, consoles: Consoles) -> int:
    """Submit `request`, follow it live, print the result and the demo's timings.

    Returns the labimage exit code: 0 succeeded, 2 refused, 3 failed or cancelled, 4 unreachable.
    """
    out = consoles.out
    started = time.monotonic()
    accepted = submit_request(client, request, consoles)
    final = watch_build(client, accepted["id"], out, timeout_s=WATCH_TIMEOUT_S)
    wall_s = time.monotonic() - started
    out.print()
    print_result(out, final)
    out.print(f"submit to {final['state']}, wall clock: {format_duration(wall_s)}")
    boot = vm_boot_seconds(final["events"])
    if boot is not None:
        out.print(f"build VM: create call to SSH answering: {boot:.1f} s")
    if not final.get("connection"):
        out.print("no VM was kept (relaunch.keep_running is false); commands a kept VM would get:")
        out.print("  ssh -i <key> azureuser@<address>", highlight=False)
        out.print("  ssh -i <key> -N -L 7005:localhost:8889 azureuser@<address>", highlight=False)
    return outcome_code(final)


def vm_boot_seconds(events: list[dict[str, Any]]) -> float | None:
    """From the 'creating VM' event to the 'answers SSH' one, as the pipeline records them."""
    created = next((e["at"] for e in events if e["message"].startswith("creating VM")), None)
    answered = next((e["at"] for e in events if "answers SSH" in e["message"]), None)
    return seconds_between(created, answered)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--keep", action="store_true", help="leave localcloud running afterwards")
    parser.add_argument("--request", type=Path, default=SEED)
    args = parser.parse_args(argv)
    terminate_like_interrupt()  # SIGTERM tears the instance down as Ctrl-C does
    layout = Layout(args.state_dir)
    consoles = Consoles(Console(), Console(stderr=True))
    try:
        if localcloud("up", args.state_dir) != 0:
            print("localcloud did not come up; see the logs under", args.state_dir / "logs")
            return 1
        env = read_env_file(layout)
        assert env is not None
        print("preparing the notebook repository and the Blob data", flush=True)
        seed_ooi(env["settings"]["AzureWebJobsStorage"], args.state_dir / "git")
        replace_earlier_demo_image(env, args.request)
        # Automation's door: the host's function key (an administrator's power), as a
        # pipeline would use it; people sign in instead (README: who may do what).
        key = read_host_keys(layout.funchost_dir)["default"]
        client = ApiClient(env["endpoints"]["functions"], function_key=key)
        print(f"submitting {_shown(args.request)}", flush=True)
        return guarded(lambda: run_build(client, args.request, consoles), consoles.err)
    finally:
        if not args.keep:
            localcloud("down", args.state_dir)


def replace_earlier_demo_image(env: dict[str, Any], request_file: Path) -> None:
    """localcloud keeps its resources between runs, and labimage refuses to overwrite an image
    an earlier build made. The demo is meant to be run again, so it removes the image an
    earlier demo build left under the same name (and only one a labimage build made)."""
    name = json.loads(request_file.read_text())["image"]["name"]
    os.environ.setdefault("IDENTITY_ENDPOINT", env["settings"]["IDENTITY_ENDPOINT"])
    os.environ.setdefault("IDENTITY_HEADER", env["settings"]["IDENTITY_HEADER"])
    settings = read_settings(env["settings"])
    azure = AzureClients(settings)
    exists, made_by = images.image_build_tag(azure, name)
    if exists and made_by:
        print(f"removing image {name} left by an earlier demo build ({made_by})", flush=True)
        azure.compute.images.begin_delete(settings.resource_group, name).result()


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
