"""Disk files: OS layers (overlay upper directories), sparse data disk files, loop devices."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from localcloud.sandbox.commands import SandboxError, run

# cp keeps holes, reflinks where the file system can, and with -a (as root) the overlay
# whiteouts (char devices 0/0) and trusted.overlay.* xattrs.
SPARSE_COPY = ["cp", "-a", "--sparse=always", "--reflink=auto"]
# An image's OS layer holds a whole Python environment (hundreds of MB): on a busy 2-core host
# its copy takes minutes (a VM create from an image failed at the old 60 s in a chaos run, load
# average 20), and several VMs created from one image at once copy it concurrently.
COPY_TIMEOUT_S = 900


def new_os_disk(path: Path, source: Path | None = None) -> None:
    """An empty OS layer (over a platform image's base tree) or a copy of `source`."""
    if source is not None:
        copy_os_disk(source, path)
        return
    delete_disk(path)
    (path / "upper").mkdir(parents=True)
    (path / "work").mkdir()


def copy_os_disk(source: Path, dest: Path) -> None:
    """Copy the upper layer; the work dir is overlay scratch space and starts empty."""
    if not (source / "upper").is_dir():
        raise SandboxError(f"{source} is not an OS layer")
    delete_disk(dest)
    dest.mkdir(parents=True)
    run([*SPARSE_COPY, str(source / "upper"), str(dest / "upper")], timeout_s=COPY_TIMEOUT_S)
    (dest / "work").mkdir()


def new_data_disk(path: Path, size_gb: int, source: Path | None = None) -> None:
    """A sparse, unformatted disk file of `size_gb`, or a sparse copy of `source` grown to it."""
    if source is not None:
        copy_data_disk(source, path)
    else:
        delete_disk(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    size = size_gb * 1024**3
    if path.stat().st_size < size:
        os.truncate(path, size)


def copy_data_disk(source: Path, dest: Path) -> None:
    delete_disk(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    run([*SPARSE_COPY, str(source), str(dest)], timeout_s=COPY_TIMEOUT_S)


def delete_disk(path: Path) -> None:
    """Remove a disk file or OS layer directory; nothing to do when it is gone."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# --- loop devices ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LoopDevice:
    device: str  # /dev/loopN
    backing_file: str

    @property
    def name(self) -> str:
        return Path(self.device).name


def attach(path: Path) -> str:
    """Attach a disk file to a free loop device with partition scanning; return /dev/loopN."""
    return run(["losetup", "--find", "--show", "--partscan", str(path)]).strip()


def detach(device: str, timeout: float = 10.0, backing: str | None = None) -> None:
    """Detach a loop device, waiting for a dying sandbox to release its mounts of it. With
    `backing`, only while the device still holds that file: a freed number is handed out
    again, and a stale record must not cut another VM's disk."""
    deadline = time.monotonic() + timeout
    while True:
        if not any(
            d.device == device and (backing is None or d.backing_file == backing)
            for d in list_loops()
        ):
            return
        run(["losetup", "-d", device], check=False)
        if time.monotonic() > deadline:
            raise SandboxError(f"loop device {device} stays attached")
        time.sleep(0.05)


def list_loops() -> list[LoopDevice]:
    out = run(["losetup", "-J", "-l"]).strip()
    if not out:
        return []
    found = []
    for entry in json.loads(out).get("loopdevices", []):
        backing = str(entry.get("back-file") or "").removesuffix(" (deleted)")
        found.append(LoopDevice(entry["name"], backing))
    return found


def loops_under(folder: Path) -> list[LoopDevice]:
    """Loop devices whose backing file lies in `folder`."""
    prefix = str(folder.resolve()).rstrip("/") + "/"
    return [d for d in list_loops() if d.backing_file.startswith(prefix)]
