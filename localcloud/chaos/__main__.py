"""`python -m localcloud.chaos --builds N --seed S --plan PLAN.json [--outside F,...]`

Brings up its own localcloud instance (own state folder and ports, moved by --port-offset or
LABIMAGE_E2E_PORT_OFFSET), runs N builds at once under the fault plan and the outside faults,
waits for each to end, runs the sweeper once, prints and writes the tally as JSON, and takes
the instance down (also on an error, Ctrl-C or SIGTERM).

Outside faults (--outside, comma-separated; each strikes once per build, at a seeded stage and
moment; with --one-fault-each build i gets only the i-th): kill_host, restart_azurite,
duplicate, delete_vm, deallocate_vm, delete_image.
--baseline first runs the same builds without any fault, for the extra wall time faults cost.

Tally: succeeded, failed_cleanly (an out-of-band deletion, named in the build's error),
failed_other, stuck (not ended in --timeout), lost (no record), duplicated (two VMs of one
build at once, or two images), leaked_after_cleanup / leaked_after_sweeper (resources still
tagged with a finished build), poison_messages, wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from localcloud.chaos.instance import Instance, localcloud, wait_for_api
from localcloud.chaos.run import INSIDE, Round
from localcloud.faults import FaultPlanError, read_plan
from localcloud.seed_content import seed_ooi
from localcloud.signals import terminate_like_interrupt


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m localcloud.chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--builds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--plan", type=Path, help="fault plan (localcloud/faults.py); none: off")
    parser.add_argument("--outside", default="", help="outside faults, comma-separated")
    parser.add_argument(
        "--one-fault-each",
        action="store_true",
        help="build i gets only the i-th outside fault (round robin), not all of them",
    )
    parser.add_argument("--baseline", action="store_true", help="first run without faults")
    parser.add_argument(
        "--key-vault",
        action="store_true",
        help="SSH keys in the Key Vault emulator (so `VAULT <METHOD>` rules meet the controller)",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before 'stuck'")
    parser.add_argument("--out", type=Path, help="where the JSON goes (default: printed only)")
    parser.add_argument("--state-dir", type=Path, help="default: a fresh temporary folder")
    parser.add_argument(
        "--port-offset",
        type=int,
        default=int(os.environ.get("LABIMAGE_E2E_PORT_OFFSET", "0")),
    )
    parser.add_argument("--keep", action="store_true", help="leave the instance up afterwards")
    args = parser.parse_args(argv)
    outside = tuple(f for f in args.outside.split(",") if f)
    unknown = [f for f in outside if f not in INSIDE]
    if unknown:
        parser.error(f"--outside: unknown fault {unknown[0]!r} (known: {', '.join(INSIDE)})")
    args.outside = outside
    if args.builds < 1 or args.builds > 32:
        parser.error("--builds: from 1 to 32")
    if args.plan is not None:
        try:
            read_plan(args.plan)
        except (OSError, FaultPlanError) as error:
            parser.error(f"--plan: {error}")
    return args


def chaos(args: argparse.Namespace, state_dir: Path) -> dict[str, Any]:
    plan = json.loads(args.plan.read_text()) if args.plan else {}
    extra = ["--key-vault"] if args.key_vault else []
    if localcloud("up", state_dir, args.port_offset, extra) != 0:
        raise RuntimeError(f"localcloud did not come up; see {state_dir / 'logs'}")
    instance = Instance.read(state_dir)
    wait_for_api(instance)
    seed_ooi(instance.storage, state_dir / "git")
    result: dict[str, Any] = {
        "command": " ".join(["python -m localcloud.chaos", *sys.argv[1:]]),
        "builds": args.builds,
        "seed": args.seed,
        "plan": plan,
        "outside": list(args.outside),
        "one_fault_each": args.one_fault_each,
    }
    if args.baseline:
        calm = Round(instance, args.seed, args.builds, (), "calm")
        result["baseline_wall_s"] = round(calm.run(args.timeout), 1)
        result["baseline"] = calm.tally(lambda: _sweep(instance))
    instance.arm_admin("POST", "faults", plan)
    stormy = Round(instance, args.seed, args.builds, args.outside, "chaos", args.one_fault_each)
    wall = stormy.run(args.timeout)
    result["injected"] = instance_report(instance)
    instance.arm_admin("POST", "faults", {})  # the tally's own calls go through unharmed
    result["wall_s"] = round(wall, 1)
    if "baseline_wall_s" in result:
        result["extra_wall_s"] = round(wall - result["baseline_wall_s"], 1)
    result.update(stormy.tally(lambda: _sweep(instance)))
    return result


def instance_report(instance: Instance) -> dict[str, int]:
    """The faults the plan injected, by kind and operation (from the emulator's report)."""
    return dict(instance.arm_admin("GET", "faults").get("injected", {}))


def _sweep(instance: Instance) -> None:
    """Run the sweeper once (as its timer would) and give its deletions time to finish."""
    instance.api("POST", "/admin/functions/sweeper", {"input": ""})
    time.sleep(30)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    terminate_like_interrupt()  # SIGTERM takes the instance down as Ctrl-C does
    state_dir = (args.state_dir or Path(tempfile.mkdtemp(prefix="labimage-chaos-"))).resolve()
    try:
        result = chaos(args, state_dir)
    finally:
        if not args.keep:
            localcloud("down", state_dir, args.port_offset)
            if args.state_dir is None:
                shutil.rmtree(state_dir, ignore_errors=True)
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    summary = {k: result.get(k) for k in SUMMARY}
    print(json.dumps(summary), file=sys.stderr)
    return 0


SUMMARY = (
    "builds",
    "succeeded",
    "failed_cleanly",
    "failed_other",
    "stuck",
    "lost",
    "duplicated",
    "leaked_after_cleanup",
    "leaked_after_sweeper",
    "poison_messages",
    "wall_s",
    "extra_wall_s",
)


if __name__ == "__main__":
    sys.exit(main())
