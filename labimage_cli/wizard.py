"""`labimage init`: write a first build request from the few things a researcher knows.

Every answer comes from a flag or, in a terminal, from a question; each is checked with the
same request model the API uses (a bad answer is asked again in a terminal, and named with its
field path otherwise), and the file written is one `labimage submit` accepts as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.prompt import Prompt

from labimage_cli.commands import InvalidRequest
from labimage_cli.safe_text import plain
from shared.models.parse import parse_build_request
from shared.models.problems import RequestRejected

UBUNTU_2404 = {
    "publisher": "Canonical",
    "offer": "ubuntu-24_04-lts",
    "sku": "server",
    "version": "latest",
}


@dataclass(frozen=True)
class Question:
    dest: str  # argparse destination
    field: str  # the request field it fills (for its problems)
    text: str
    default: str | None = None  # None: required


QUESTIONS = (
    Question("name", "name", "Request name (lower-case letters, digits, '-')"),
    Question("owner", "owner", "Owner (e-mail)"),
    Question("project", "project", "Project"),
    Question("vm_size", "vm.size", "VM size", "Standard_D2s_v5"),
    Question("packages", "python.packages", "Python packages, comma-separated", ""),
    Question("data_container", "data[0].container", "Data container (empty: none)", ""),
    Question("data_prefix", "data[0].prefix", "Blob prefix in that container", ""),
    Question("repository", "repositories[0].url", "Notebook repository URL (https)", ""),
    Question("ref", "repositories[0].ref", "Branch, tag or commit to pin", "main"),
    Question("notebooks", "notebooks.run", "Notebooks to run (globs)", "notebooks/*.ipynb"),
    Question("image_name", "image.name", "Image name", ""),
    Question("autostop", "autostop.time", "Stop the VMs every evening at (HH:MM)", "19:00"),
    Question("time_zone", "autostop.time_zone", "Time zone of that time", "UTC"),
)  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="request name (also the default image and file name)")
    p.add_argument("--owner", help="owner's e-mail")
    p.add_argument("--project", help="project (a tag on every resource)")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="extra tag")
    p.add_argument("--vm-size", help="VM size (default Standard_D2s_v5)")
    p.add_argument("--python", default="3.11", help="Python version (default 3.11)")
    p.add_argument(
        "--package", dest="package_list", action="append", default=[], help="a Python package"
    )
    p.add_argument("--from-requirements", type=Path, help="take the packages from this file")
    p.add_argument("--data-container", help="Blob container with the data")
    p.add_argument("--data-prefix", help="blob prefix to copy (e.g. AT4212/)")
    p.add_argument("--data-destination", default="/datadrive/data", help="where the data goes")
    p.add_argument("--repository", help="notebook repository (https URL)")
    p.add_argument("--ref", help="branch, tag or commit to pin (default main)")
    p.add_argument("--repository-destination", default="/datadrive/notebooks")
    p.add_argument("--notebook", dest="notebook_list", action="append", default=[])
    p.add_argument("--notebook-timeout", type=int, default=20, help="minutes per notebook")
    p.add_argument("--image-name", help="image name (default <name>-image)")
    p.add_argument("--autostop", help="evening stop time HH:MM (default 19:00)")
    p.add_argument("--time-zone", help="IANA time zone of the stop time (default UTC)")
    p.add_argument("--output", "-o", type=Path, help="file to write (default <name>.json)")
    p.add_argument("--force", action="store_true", help="overwrite the file if it exists")


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def requirements_packages(path: Path) -> list[str]:
    """The requirement lines of a requirements file (comments and blank lines dropped)."""
    try:
        text = path.read_text()
    except OSError as error:
        raise InvalidRequest(f"cannot read {path}: {error.strerror or error}", []) from None
    packages = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise InvalidRequest(
                f"{path} line {number}: options such as {line.split()[0]} are not supported; "
                "list packages only",
                [],
            )
        packages.append(line)
    return packages


def request_document(answers: dict[str, Any]) -> dict[str, Any]:
    """The build request the answers describe, in the order and shape of the examples."""
    tags = dict(t.split("=", 1) for t in answers.get("tag") or [] if "=" in t)
    doc: dict[str, Any] = {
        "name": answers["name"],
        "owner": answers["owner"],
        "project": answers["project"],
    }
    if tags:
        doc["tags"] = tags
    doc["vm"] = {
        "size": answers["vm_size"],
        "image": dict(UBUNTU_2404),
        "admin_username": "azureuser",
    }
    doc["data_disk"] = {"size_gb": 256, "lun": 0, "mount_point": "/datadrive", "filesystem": "xfs"}
    doc["python"] = {
        "installer": "uv",
        "version": answers.get("python") or "3.11",
        "packages": answers["packages"],
        "jupyter": {"lab": True},
    }
    if answers.get("data_container"):
        source: dict[str, Any] = {"container": answers["data_container"]}
        if answers.get("data_prefix"):
            source["prefix"] = answers["data_prefix"]
        source["destination"] = answers.get("data_destination") or "/datadrive/data"
        doc["data"] = [source]
    if answers.get("repository"):
        doc["repositories"] = [
            {
                "url": answers["repository"],
                "ref": answers.get("ref") or "main",
                "destination": answers.get("repository_destination") or "/datadrive/notebooks",
            }
        ]
        doc["notebooks"] = {
            "run": answers["notebooks"],
            "timeout_minutes": answers.get("notebook_timeout") or 20,
        }
    doc["image"] = {"name": answers.get("image_name") or f"{answers['name']}-image"}
    doc["relaunch"] = {"verify": True, "keep_running": False}
    doc["autostop"] = {
        "enabled": True,
        "time": answers["autostop"],
        "time_zone": answers["time_zone"],
    }
    return doc


def problems_of(doc: dict[str, Any]) -> list[dict[str, str]]:
    try:
        parse_build_request(json.dumps(doc).encode())
    except RequestRejected as rejected:
        return [p.model_dump() for p in rejected.problems]
    return []


def _given(args: argparse.Namespace) -> dict[str, Any]:
    answers: dict[str, Any] = {
        "name": args.name,
        "owner": args.owner,
        "project": args.project,
        "vm_size": args.vm_size,
        "packages": list(args.package_list) or None,
        "data_container": args.data_container,
        "data_prefix": args.data_prefix,
        "repository": args.repository,
        "ref": args.ref,
        "notebooks": list(args.notebook_list) or None,
        "image_name": args.image_name,
        "autostop": args.autostop,
        "time_zone": args.time_zone,
        "tag": args.tag,
        "python": args.python,
        "data_destination": args.data_destination,
        "repository_destination": args.repository_destination,
        "notebook_timeout": args.notebook_timeout,
    }
    if args.from_requirements:
        answers["packages"] = requirements_packages(args.from_requirements)
    return answers


LIST_ANSWERS = {"packages", "notebooks"}


def _answer(question: Question, raw: str) -> Any:
    return _split(raw) if question.dest in LIST_ANSWERS else (raw.strip() or None)


# Only asked when the question they depend on was answered.
DEPENDS_ON = {"data_prefix": "data_container", "ref": "repository", "notebooks": "repository"}
# Valid stand-ins for required answers not given yet, so one answer can be checked alone.
STAND_INS = {"name": "placeholder", "owner": "someone@example.org", "project": "placeholder"}


def collect(
    args: argparse.Namespace, ask: Callable[[Question, str | None], str] | None
) -> dict[str, Any]:
    """The answers from the flags; with `ask`, missing ones (and bad ones) are asked for."""
    answers = _given(args)
    settled: set[str] = {q.dest for q in QUESTIONS if answers.get(q.dest) is not None}
    for question in QUESTIONS:
        needed = DEPENDS_ON.get(question.dest)
        if question.dest not in settled and (needed is None or answers.get(needed)):
            if ask is None:
                answers[question.dest] = _answer(question, question.default or "")
            else:
                answers[question.dest] = _answer(question, ask(question, question.default))
        elif question.dest not in settled:
            answers[question.dest] = _answer(question, question.default or "")
        settled.add(question.dest)
        while ask is not None:
            wrong = _problems_at(answers, settled, question)
            if not wrong:
                break
            for problem in wrong:
                print(f"  {problem['message']}", file=sys.stderr)
            answers[question.dest] = _answer(question, ask(question, question.default))
    for question in QUESTIONS:
        if question.dest in LIST_ANSWERS and answers.get(question.dest) is None:
            answers[question.dest] = []
    return answers


def _problems_at(
    answers: dict[str, Any], settled: set[str], question: Question
) -> list[dict[str, str]]:
    """Problems with `question`'s field alone: unsettled answers get valid stand-ins."""
    filled = dict(answers)
    for other in QUESTIONS:
        if other.dest not in settled:
            filled[other.dest] = STAND_INS.get(other.dest) or _answer(other, other.default or "")
        if other.dest in LIST_ANSWERS and filled.get(other.dest) is None:
            filled[other.dest] = []
    prefix = question.field.split("[", 1)[0].split(".", 1)[0]
    return [p for p in problems_of(request_document(filled)) if p["field"].startswith(prefix)]


def run_init(args: argparse.Namespace, console: Console) -> int:
    """Write the request; 0 when written, raises InvalidRequest when something is wrong."""
    interactive = sys.stdin.isatty() and console.is_terminal

    def ask(question: Question, default: str | None) -> str:
        return Prompt.ask(question.text, default=default, console=console) or ""

    answers = collect(args, ask if interactive else None)
    missing = [q.field for q in QUESTIONS[:3] if not answers.get(q.dest)]
    if missing:
        raise InvalidRequest(
            "missing answers",
            [{"field": f, "message": f"give --{f.replace('_', '-')}"} for f in missing],
        )
    doc = request_document(answers)
    problems = problems_of(doc)
    if problems:
        raise InvalidRequest("the answers do not make a valid build request", problems)
    output: Path = args.output or Path(f"{answers['name']}.json")
    if output.exists() and not args.force:
        raise InvalidRequest(f"{output} exists; add --force to replace it", [])
    output.write_text(json.dumps(doc, indent=2) + "\n")
    console.print(plain(f"wrote {output}; submit it with: labimage submit {output} --wait"))
    return 0
