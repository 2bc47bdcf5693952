#!/usr/bin/env python3
"""collect_guest.py <params.json>: what the guest holds, for the build's manifest.

params.json: {"prefix": "/opt/labimage", "repositories": ["/datadrive/notebooks", ...]}
Prints one JSON line: the Python version, the installer and its version, every installed
Python distribution with its exact version (and the index's hashes for it when the index can be
asked), the conda explicit list for a conda environment, the Debian package list, and the
commit each repository's working tree is at. Runs with the system python3; reads only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

STEP_TIMEOUT_S = 240


def run(argv: list[str], stdin: str | None = None, env: dict | None = None) -> str | None:
    try:
        done = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S,
            env={**os.environ, **(env or {})},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def python_facts(prefix: str) -> dict:
    env_python = os.path.join(prefix, "env", "bin", "python")
    uv = os.path.join(prefix, "bootstrap", "bin", "uv")
    conda = os.path.join(prefix, "conda", "bin", "conda")
    facts: dict = {"python_version": None, "installer": None, "installer_version": None}
    version = run([env_python, "-c", "import sys; print(sys.version.split()[0])"])
    facts["python_version"] = version.strip() if version else None
    if os.path.exists(os.path.join(prefix, "env", "conda-meta")) and os.access(conda, os.X_OK):
        facts["installer"] = "conda"
        facts["installer_version"] = (run([conda, "--version"]) or "").strip() or None
        facts["conda_explicit"] = run(
            [conda, "list", "--explicit", "--md5", "-p", os.path.join(prefix, "env")]
        )
    elif os.access(uv, os.X_OK):
        facts["installer"] = "uv"
        facts["installer_version"] = (run([uv, "--version"]) or "").strip() or None
    facts["packages"] = installed(env_python, uv if facts["installer"] == "uv" else None)
    return facts


def installed(env_python: str, uv: str | None) -> list[dict]:
    """name, version of every distribution in the environment; with uv, the index's sha256
    hashes of that exact version's files (a lock: `uv pip install --require-hashes`)."""
    listing = run(
        [
            env_python,
            "-c",
            "import json, importlib.metadata as m; print(json.dumps(sorted("
            "{(d.metadata['Name'], d.version) for d in m.distributions() if d.metadata['Name']})))",
        ]
    )
    if listing is None:
        return []
    packages = [{"name": n, "version": v, "hashes": []} for n, v in json.loads(listing)]
    if uv is None or not packages:
        return packages
    pins = "".join(f"{p['name']}=={p['version']}\n" for p in packages)
    cache = tempfile.mkdtemp(prefix="labimage-uv-cache-")
    try:
        locked = run(
            [
                uv,
                "pip",
                "compile",
                "-",
                "--generate-hashes",
                "--no-deps",
                "--no-header",
                "--no-annotate",
                "--python",
                env_python,
                "--quiet",
            ],
            stdin=pins,
            env={
                "UV_CACHE_DIR": cache,
                "UV_NO_PROGRESS": "1",
                "UV_SYSTEM_CERTS": "1",
                "UV_NATIVE_TLS": "1",
            },
        )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    hashes = parse_hashes(locked or "")
    for package in packages:
        package["hashes"] = hashes.get(normal(package["name"]), [])
    return packages


def normal(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def parse_hashes(text: str) -> dict[str, list[str]]:
    """'name==1.0 \\ --hash=sha256:...' lines as {normal name: [sha256:...]}."""
    found: dict[str, list[str]] = {}
    current = None
    for raw in text.replace("\\\n", " ").splitlines():
        parts = raw.split()
        if not parts or parts[0].startswith("#"):
            continue
        if "==" in parts[0]:
            current = normal(parts[0].split("==", 1)[0].split("[", 1)[0])
            found[current] = []
        for part in parts:
            if part.startswith("--hash=") and current is not None:
                found[current].append(part[len("--hash=") :])
    return found


def os_packages() -> list[dict]:
    text = run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${Architecture}\n"])
    packages = []
    for line in (text or "").splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0]:
            packages.append({"name": parts[0], "version": parts[1], "arch": parts[2]})
    return packages


def os_release_id() -> str | None:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("ID="):
                    return line.split("=", 1)[1].strip().strip('"') or None
    except OSError:
        return None
    return None


def commits(destinations: list[str]) -> dict[str, str | None]:
    found = {}
    for destination in destinations:
        out = run(["git", "-c", "safe.directory=*", "-C", destination, "rev-parse", "HEAD"])
        found[destination] = out.strip() if out else None
    return found


def main() -> int:
    with open(sys.argv[1]) as f:
        params = json.load(f)
    prefix = params.get("prefix") or "/opt/labimage"
    report = {
        **python_facts(prefix),
        "os_id": os_release_id(),
        "os_packages": os_packages(),
        "commits": commits([str(d) for d in params.get("repositories") or []]),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
