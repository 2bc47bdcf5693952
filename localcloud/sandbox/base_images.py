"""Base root file systems of the marketplace images localcloud offers, made once with mmdebstrap.

Azure's marketplace images cannot be downloaded here, so each offered image is stood in for by a
minimal Debian system made from the Debian archive this machine's apt already uses (read from
/etc/apt, never a host written here), with the packages a server cloud image has that recipes
rely on. A guest's root is an overlay with this tree below and its OS disk above.

The trees live in a cache folder shared by every localcloud instance of this machine
(`LOCALCLOUD_IMAGE_CACHE`, default `/var/cache/localcloud/images`), one folder per image and
package list (the key is a hash of the recipe), made under a lock in a temporary folder and
renamed into place, so concurrent instances build it once and never see half a tree.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from localcloud.sandbox.commands import SandboxError

CACHE_ENV = "LOCALCLOUD_IMAGE_CACHE"
DEFAULT_CACHE = Path("/var/cache/localcloud/images")
APT_SOURCES = Path("/etc/apt")
BUILD_TIMEOUT_S = 1800

# What Ubuntu's server cloud image has that a recipe relies on. python3 comes without pip and
# venv (ensurepip), as on Ubuntu; apt is part of the minimal base.
SERVER_PACKAGES = (
    "openssh-server",
    "sudo",
    "python3",
    "cloud-init",
    "waagent",
    "curl",
    "git",
    "ca-certificates",
    "xfsprogs",
    "parted",
    "util-linux",
    "e2fsprogs",
    "fdisk",
    "iproute2",
    "procps",
    "netbase",
    "less",
    "xz-utils",
    "bzip2",
    "gnupg",
)

# The image's own cloud-init settings (Ubuntu's image has its equivalents for Azure):
# - the VM's data source is a NoCloud seed the emulator writes (Azure's is its wire server);
# - the network is configured from the host side (no renderer in a minimal image);
# - C.UTF-8 needs no locale generation; /etc/hosts is cloud-init's (minbase has none).
CLOUD_CFG = """\
# localcloud base image: how cloud-init finds its data and what it must leave alone here
datasource_list: [ NoCloud, None ]
network: {config: disabled}
locale: C.UTF-8
manage_etc_hosts: true
"""

# Without systemd, `poweroff` asks the sandbox's init to stop the VM (as a VM's own shutdown).
POWEROFF = """#!/bin/sh
# localcloud: the sandbox's init stops the VM on SIGTERM (there is no systemd here)
exec kill -TERM 1
"""


@dataclass(frozen=True)
class BaseImage:
    """One offered marketplace image and how its stand-in is made."""

    urn: str  # publisher:offer:sku, as ARM names it (compared without case)
    name: str  # folder name in the cache
    suite: str  # the Debian suite that stands in
    packages: tuple[str, ...]
    os_name: str  # what the instance view reports
    os_version: str

    def key(self, sources: list[str]) -> str:
        recipe = {
            "recipe": 2,
            "suite": self.suite,
            "packages": sorted(self.packages),
            "sources": sources,
            "cloud_cfg": CLOUD_CFG,
            "poweroff": POWEROFF,
        }
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


OFFERED = (
    BaseImage(
        "canonical:ubuntu-24_04-lts:server",
        "ubuntu-24_04-lts-server",
        "bookworm",
        SERVER_PACKAGES,
        "ubuntu",
        "24.04",
    ),
    # The Gen1 SKU of the same release (aliases.json in the REST specs): the same tree, one
    # cache folder; only the hypervisor generation differs, which the emulator models.
    BaseImage(
        "canonical:ubuntu-24_04-lts:server-gen1",
        "ubuntu-24_04-lts-server",
        "bookworm",
        SERVER_PACKAGES,
        "ubuntu",
        "24.04",
    ),
)


def offered(publisher: str, offer: str, sku: str) -> BaseImage | None:
    urn = f"{publisher}:{offer}:{sku}".lower()
    return next((image for image in OFFERED if image.urn == urn), None)


def by_urn(urn: str) -> BaseImage:
    found = next((image for image in OFFERED if image.urn == urn.lower()), None)
    if found is None:
        raise SandboxError(f"no base image for {urn}")
    return found


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


# --- the configured Debian archive ---------------------------------------------------------


def configured_sources(suite: str, apt_dir: Path = APT_SOURCES) -> list[str]:
    """One-line `deb` entries of the configured archive for `suite` and its -updates/-security.

    Reads both formats apt knows (deb822 `.sources` and one-line `.list`); only binary (`deb`)
    entries whose suite is `suite` or starts with `suite-` are kept, in file order."""
    files = []
    if (apt_dir / "sources.list").is_file():
        files.append(apt_dir / "sources.list")
    folder = apt_dir / "sources.list.d"
    if folder.is_dir():
        files += sorted(p for p in folder.iterdir() if p.suffix in (".list", ".sources"))
    lines: list[str] = []
    for path in files:
        text = path.read_text(errors="replace")
        entries = _deb822(text) if path.suffix == ".sources" else _one_line(text)
        for options, uri, entry_suite, components in entries:
            if entry_suite != suite and not entry_suite.startswith(f"{suite}-"):
                continue
            prefix = f"deb [{options}] " if options else "deb "
            line = f"{prefix}{uri} {entry_suite} {' '.join(components)}"
            if line not in lines:
                lines.append(line)
    return lines


Entry = tuple[str, str, str, list[str]]  # options, uri, suite, components


def _one_line(text: str) -> list[Entry]:
    entries = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        rest = line[4:].strip()
        options = ""
        if rest.startswith("["):
            options, _, rest = rest[1:].partition("]")
        words = rest.split()
        if len(words) >= 3:
            entries.append((options.strip(), words[0], words[1], words[2:]))
    return entries


def _deb822(text: str) -> list[Entry]:
    entries = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for raw in stanza.splitlines():
            if raw.startswith("#") or ":" not in raw or raw[:1].isspace():
                continue
            name, _, value = raw.partition(":")
            fields[name.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        options = f"signed-by={fields['signed-by']}" if "signed-by" in fields else ""
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                entries.append((options, uri, suite, fields.get("components", "main").split()))
    return entries


# --- making and caching --------------------------------------------------------------------


# Trees already found in this process, by (image, cache folder): a VM start does not read the apt
# sources and hash the recipe again.
_FOUND: dict[tuple[BaseImage, Path], Path] = {}


def ensure(image: BaseImage, progress: Callable[[str], None] | None = None) -> Path:
    """The image's root tree, made first if the cache lacks it (a progress line while it is)."""
    found = _FOUND.get((image, cache_dir()))
    if found is not None and found.is_dir():
        return found
    root = _ensure(image, progress)
    _FOUND[(image, cache_dir())] = root
    return root


def _ensure(image: BaseImage, progress: Callable[[str], None] | None) -> Path:
    sources = configured_sources(image.suite)
    if not sources:
        raise SandboxError(
            f"no Debian {image.suite} archive is configured in {APT_SOURCES}: "
            "cannot make the base image"
        )
    folder = cache_dir()
    final = folder / f"{image.name}-{image.key(sources)}"
    root = final / "root"
    if root.is_dir():
        return root
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{final.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another instance may be making it right now
        if root.is_dir():
            return root
        _build(image, sources, final, progress or _print)
    return root


def purge() -> Path:
    """Remove every cached base image; returns the folder emptied."""
    folder = cache_dir()
    if folder.is_dir():
        shutil.rmtree(folder)
    return folder


def _remove_temp(temp: Path) -> None:
    """Unmount what a killed mmdebstrap left mounted below `temp` (deepest first), then remove
    it: rmtree must never walk into a mounted /proc or /dev of the tree."""
    listed = subprocess.run(
        ["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True, check=False
    ).stdout.split()
    inside = [m for m in listed if Path(m) == temp or temp in Path(m).parents]
    for mount in sorted(inside, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
    shutil.rmtree(temp, ignore_errors=True)


def _print(line: str) -> None:
    print(line, flush=True)


def _build(
    image: BaseImage, sources: list[str], final: Path, progress: Callable[[str], None]
) -> None:
    if shutil.which("mmdebstrap") is None:
        raise SandboxError("mmdebstrap is not installed (`make setup` installs it)")
    # Under the lock no one else is making this tree: any temporary folder left is from a run
    # that was killed (its mounts too), and goes before a new one starts.
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        _remove_temp(stale)
    temp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    temp.mkdir(parents=True)
    log_path = final.with_name(f"{final.name}.log")
    hooks = [
        'rm -f "$1"/etc/ssh/ssh_host_*',  # every VM gets its own host keys at first boot
        ': > "$1"/etc/machine-id',
        'mkdir -p "$1"/etc/cloud/cloud.cfg.d',
        f'printf %s {_sh_quote(CLOUD_CFG)} > "$1"/etc/cloud/cloud.cfg.d/90-localcloud.cfg',
        f'printf %s {_sh_quote(POWEROFF)} > "$1"/usr/local/sbin/poweroff',
        'chmod 0755 "$1"/usr/local/sbin/poweroff',
    ]
    argv = [
        "mmdebstrap",
        "--mode=root",
        "--variant=minbase",
        "--include=" + ",".join(image.packages),
        *(f"--customize-hook={hook}" for hook in hooks),
        image.suite,
        str(temp / "root"),
        *sources,
    ]
    progress(
        f"making the base image {image.urn} ({image.suite}, {len(image.packages)} packages) in "
        f"{final.parent}: once, about 2 minutes; log {log_path}"
    )
    started = time.monotonic()
    done = threading.Event()

    def tick() -> None:
        while not done.wait(20):
            progress(f"  still making {image.name}: {time.monotonic() - started:.0f} s")

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=BUILD_TIMEOUT_S,
                check=False,
            )
    except BaseException:  # a time-out or Ctrl-C: no half-made tree stays in the cache
        _remove_temp(temp)
        raise
    finally:
        done.set()
    if proc.returncode != 0:
        _remove_temp(temp)
        tail = log_path.read_text(errors="replace")[-800:]
        raise SandboxError(f"mmdebstrap failed with status {proc.returncode}: {tail}")
    (temp / "recipe.json").write_text(
        json.dumps(
            {
                "urn": image.urn,
                "suite": image.suite,
                "packages": image.packages,
                "sources": sources,
            },
            indent=1,
        )
    )
    temp.rename(final)
    progress(f"base image {image.name} made in {time.monotonic() - started:.0f} s")


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
