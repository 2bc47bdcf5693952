"""A VmRunner that runs nothing: disks are real files, VMs are entries in a dict.

For tests of the emulator and for scale runs; `kill` imitates a VM dying from outside.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from localcloud.sandbox.api import BootSpec


def sparse_copy(source: Path, dest: Path) -> None:
    """Copy only the data extents of `source` (a 256 GB empty disk must stay empty on disk)."""
    size = source.stat().st_size
    with source.open("rb") as fin, dest.open("wb") as fout:
        fout.truncate(size)
        fd = fin.fileno()
        position = 0
        while position < size:
            try:
                start = os.lseek(fd, position, os.SEEK_DATA)
            except OSError:  # ENXIO: nothing but holes from here on
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            fin.seek(start)
            fout.seek(start)
            remaining = end - start
            while remaining > 0:
                chunk = fin.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                fout.write(chunk)
                remaining -= len(chunk)
            position = end


class MemoryRunner:
    """Implements `localcloud.sandbox.api.VmRunner` without processes or namespaces."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, BootSpec] = {}
        self._boots = 0
        self.calls: list[tuple[str, str]] = []  # (method, argument) for tests

    def prepare(self) -> None:
        self.calls.append(("prepare", ""))

    def new_os_disk(self, path: Path, source: Path | None = None) -> None:
        self.calls.append(("new_os_disk", str(path)))
        if source is not None:
            shutil.copytree(source, path, dirs_exist_ok=True)
        else:
            path.mkdir(parents=True, exist_ok=True)

    def new_data_disk(self, path: Path, size_gb: int, source: Path | None = None) -> None:
        self.calls.append(("new_data_disk", str(path)))
        path.parent.mkdir(parents=True, exist_ok=True)
        if source is not None:
            sparse_copy(source, path)
        else:
            with path.open("wb") as handle:
                handle.truncate(size_gb * 1024**3)  # sparse

    def copy_os_disk(self, source: Path, dest: Path) -> None:
        self.calls.append(("copy_os_disk", str(dest)))
        shutil.copytree(source, dest, dirs_exist_ok=True)

    def copy_data_disk(self, source: Path, dest: Path) -> None:
        self.calls.append(("copy_data_disk", str(dest)))
        dest.parent.mkdir(parents=True, exist_ok=True)
        sparse_copy(source, dest)

    def boot(self, spec: BootSpec) -> str:
        self.calls.append(("boot", spec.vm_key))
        with self._lock:
            self._boots += 1
            self._running[spec.vm_key] = spec
            # A loopback address nothing listens on: a connection is refused at once, and no
            # packet leaves the machine (a documentation range such as 192.0.2.0/24 would go
            # out through the default route and time out).
            return f"127.0.2.{self._boots % 250 + 1}"

    def shutdown(self, vm_key: str) -> None:
        self.calls.append(("shutdown", vm_key))
        with self._lock:
            self._running.pop(vm_key, None)

    def is_running(self, vm_key: str) -> bool:
        with self._lock:
            return vm_key in self._running

    def boot_spec(self, vm_key: str) -> BootSpec | None:
        """What the running VM was booted with (tests check GuestConfig through this)."""
        with self._lock:
            return self._running.get(vm_key)

    def kill(self, vm_key: str) -> None:
        """Imitate the VM dying without the emulator knowing."""
        with self._lock:
            self._running.pop(vm_key, None)

    def delete_disk(self, path: Path) -> None:
        self.calls.append(("delete_disk", str(path)))
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def teardown_all(self) -> None:
        with self._lock:
            self._running.clear()
