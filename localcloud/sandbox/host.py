"""VM runners: `SandboxHost` runs each VM as a real Linux sandbox, `RecordsOnly` runs nothing.

A running VM of `SandboxHost` is a network namespace with a veth pair and NAT, a mount/UTS/IPC/PID
namespace whose root is an overlay (the marketplace image's base tree below, the VM's OS layer
above; see `base_images`), loop devices for
its data disks, a real sshd, and optionally a relay process for host loopback ports. Every such
object is named after the state folder and recorded in it, so `teardown_all` works after a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import select
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from localcloud.sandbox import base_images, disks, network
from localcloud.sandbox.api import BootSpec
from localcloud.sandbox.commands import SandboxError
from localcloud.sandbox.layout import Layout
from localcloud.sandbox.processes import ProcessRef, children, wait_gone
from localcloud.sandbox.provisioning import GUEST_INIT, resolv_conf, write_media
from localcloud.sandbox.ssh_drops import drop_sessions
from localcloud.sandbox.teardown import teardown_state_dir

RELAY = Path(__file__).with_name("relay.py")
HOST_PYTHON = "/usr/bin/python3"  # mounts the guest's root, then hands over to the image's
SSH_PORT = 22
BOOT_TIMEOUT_S = 60.0
FIRST_BOOT_LOCK_S = 45.0  # how long a fresh VM's package job holds the dpkg lock (apt-daily)


@dataclass
class RunRecord:
    """What one running VM holds on the host (the file `run.json` in its VM folder)."""

    vm_key: str
    slot: int
    address: str
    netns: str
    loops: list[str] = field(default_factory=list)
    loop_files: list[str] = field(default_factory=list)  # each loop's disk file, in order
    launcher: tuple[int, int] | None = None  # (pid, start time) of nsenter/unshare
    init: tuple[int, int] | None = None  # the sandbox's PID 1, seen from the host
    relay: tuple[int, int] | None = None

    def refs(self) -> list[ProcessRef]:
        return [ProcessRef(*p) for p in (self.init, self.launcher, self.relay) if p]


class SandboxHost:
    """Runs VMs as Linux sandboxes; everything it creates lives under `state_dir`."""

    def __init__(
        self,
        state_dir: Path,
        *,
        subnet: str = "10.213.0.0/16",
        relay_ports: Sequence[int | tuple[int, int]] = (),
        extra_ca_pem: bytes | None = None,
        first_boot_lock_s: float = FIRST_BOOT_LOCK_S,
    ) -> None:
        self.layout = Layout.of(Path(state_dir), subnet)
        self.relay_ports = list(relay_ports)
        self.extra_ca_pem = extra_ca_pem
        self.first_boot_lock_s = first_boot_lock_s
        self._thread_lock = threading.Lock()
        self._launchers: dict[str, subprocess.Popen[bytes]] = {}
        self.layout.vms_dir.mkdir(parents=True, exist_ok=True)

    # --- host set-up ------------------------------------------------------------------------
    def prepare(self) -> None:
        network.enable_forwarding(self.layout)
        network.install_nat(self.layout)

    @staticmethod
    def base_root(urn: str) -> Path:
        """The base image's tree (made and cached on first use)."""
        return base_images.ensure(base_images.by_urn(urn))

    # --- disks ------------------------------------------------------------------------------
    def new_os_disk(self, path: Path, source: Path | None = None) -> None:
        disks.new_os_disk(path, source)

    def new_data_disk(self, path: Path, size_gb: int, source: Path | None = None) -> None:
        disks.new_data_disk(path, size_gb, source)

    def copy_os_disk(self, source: Path, dest: Path) -> None:
        disks.copy_os_disk(source, dest)

    def copy_data_disk(self, source: Path, dest: Path) -> None:
        disks.copy_data_disk(source, dest)

    def delete_disk(self, path: Path) -> None:
        disks.delete_disk(path)

    # --- VM lifecycle -----------------------------------------------------------------------
    def boot(self, spec: BootSpec) -> str:
        """Start the VM and return its address once sshd accepts TCP connections on port 22."""
        current = self._record(spec.vm_key)
        if current is not None and self._alive(current):
            return current.address
        self.shutdown(spec.vm_key)  # a crashed earlier run leaves its pieces behind
        base = self.base_root(spec.base_image)
        vm_dir = self.layout.vm_dir(spec.vm_key)
        vm_dir.mkdir(parents=True, exist_ok=True)
        (vm_dir / "vm_key").write_text(spec.vm_key)
        record = self._allocate(spec.vm_key)
        try:
            network.create_vm_network(self.layout, record.slot)
            for disk in spec.data_disks:
                record.loops.append(disks.attach(disk.path))
                record.loop_files.append(str(disk.path.resolve()))
                self._save(record)
            self._launch(spec, record, vm_dir, base)
            self._wait_for_ssh(record, vm_dir)
        except BaseException:
            self.shutdown(spec.vm_key)
            raise
        return record.address

    def shutdown(self, vm_key: str) -> None:
        """Kill the sandbox, remove its network, detach its disks, free its address."""
        record = self._record(vm_key)
        if record is None:
            return
        refs = record.refs()
        for ref in refs:
            ref.kill()
        launcher = self._launchers.pop(vm_key, None)
        if launcher is not None:
            launcher.wait(timeout=10)
        if not wait_gone(refs, timeout=10):
            raise SandboxError(f"sandbox of {vm_key} does not die")
        network.delete_vm_network(self.layout, record.slot)
        # Only while each still holds this VM's disk (a record from before loop_files: any
        # file of this instance).
        for index, device in enumerate(record.loops):
            files = record.loop_files
            if index < len(files):
                disks.detach(device, backing=files[index])
            elif any(d.device == device for d in disks.loops_under(self.layout.state_dir)):
                disks.detach(device)
        vm_dir = self.layout.vm_dir(vm_key)
        shutil.rmtree(vm_dir / "media", ignore_errors=True)
        (vm_dir / "run.json").unlink(missing_ok=True)

    def is_running(self, vm_key: str) -> bool:
        record = self._record(vm_key)
        return record is not None and self._alive(record)

    def drop_ssh(self, vm_key: str) -> int:
        """Cut the VM's open SSH connections (a fault plan's SSH drops); how many."""
        record = self._record(vm_key)
        if record is None or not self._alive(record) or record.init is None:
            return 0
        return drop_sessions(record.init[0])

    def teardown_all(self) -> None:
        self._launchers.clear()
        teardown_state_dir(self.layout)

    # --- internals --------------------------------------------------------------------------
    @staticmethod
    def _alive(record: RunRecord) -> bool:
        return record.init is not None and ProcessRef(*record.init).alive()

    def _record(self, vm_key: str) -> RunRecord | None:
        path = self.layout.vm_dir(vm_key) / "run.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        for key in ("launcher", "init", "relay"):
            data[key] = tuple(data[key]) if data.get(key) else None
        return RunRecord(**data)

    def _save(self, record: RunRecord) -> None:
        path = self.layout.vm_dir(record.vm_key) / "run.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record)))
        tmp.replace(path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialises slot allocation across threads and processes sharing the state folder."""
        with self._thread_lock, open(self.layout.lock_file, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _allocate(self, vm_key: str) -> RunRecord:
        """Take the next free slot after the last one handed out (a new address every boot)."""
        layout = self.layout
        with self._locked():
            used = {r.slot for r in self._all_records()}
            used |= {int(n.rsplit("-", 1)[1]) for n in network.our_netns(layout)}
            try:
                start = int(layout.slot_counter.read_text())
            except (FileNotFoundError, ValueError):
                start = 0
            for i in range(layout.slot_count):
                slot = (start + i) % layout.slot_count
                if slot not in used:
                    break
            else:
                raise SandboxError(f"no free address left in {layout.subnet}")
            layout.slot_counter.write_text(f"{(slot + 1) % layout.slot_count}\n")
            record = RunRecord(vm_key, slot, layout.guest_address(slot), layout.netns(slot))
            self._save(record)
            return record

    def _all_records(self) -> list[RunRecord]:
        records = []
        for run_file in self.layout.vms_dir.glob("*/run.json"):
            key_file = run_file.parent / "vm_key"
            record = self._record(key_file.read_text()) if key_file.exists() else None
            if record is not None:
                records.append(record)
        return records

    def _launch(self, spec: BootSpec, record: RunRecord, vm_dir: Path, base: Path) -> None:
        os_disk = spec.os_disk.resolve()
        (vm_dir / "root").mkdir(exist_ok=True)
        disk_nodes = [
            {"lun": d.lun, "loop": Path(dev).name, "controller": spec.disk_controller}
            for d, dev in zip(spec.data_disks, record.loops, strict=True)
        ]
        guest_config = {
            "vm_key": spec.vm_key,
            "hostname": spec.guest.hostname if spec.guest else None,
            "disks": disk_nodes,
            "resolv_conf": resolv_conf(),
            "first_boot_lock_s": (
                self.first_boot_lock_s if spec.first_boot_lock_s is None else spec.first_boot_lock_s
            ),
        }
        write_media(vm_dir / "media", spec.guest, guest_config, self.extra_ca_pem)
        boot_config = {
            "root": str(vm_dir / "root"),
            "base": str(base),
            "upper": str(os_disk / "upper"),
            "work": str(os_disk / "work"),
            "media": str(vm_dir / "media"),
        }
        (vm_dir / "boot.json").write_text(json.dumps(boot_config, indent=2))
        netns_path = f"/run/netns/{record.netns}"
        with open(vm_dir / "console.log", "ab") as console:
            launcher = subprocess.Popen(
                [
                    "nsenter",
                    f"--net={netns_path}",
                    "unshare",
                    "--mount",
                    "--uts",
                    "--ipc",
                    "--pid",
                    "--fork",
                    "--kill-child",
                    "--propagation",
                    "private",
                    HOST_PYTHON,
                    str(GUEST_INIT),
                    "--boot",
                    str(vm_dir / "boot.json"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=vm_dir,
                start_new_session=True,  # a VM outlives the emulator's process group
            )
        self._launchers[spec.vm_key] = launcher
        record.launcher = (launcher.pid, _start_time(launcher.pid))
        self._save(record)
        record.init = self._find_init(launcher)
        self._save(record)
        if self.relay_ports:
            record.relay = self._start_relay(netns_path, record.init[0], vm_dir)
            self._save(record)

    @staticmethod
    def _find_init(launcher: subprocess.Popen[bytes]) -> tuple[int, int]:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            kids = children(launcher.pid)
            if kids:
                return (kids[0], _start_time(kids[0]))
            if launcher.poll() is not None:
                raise SandboxError(f"sandbox launcher exited with status {launcher.returncode}")
            time.sleep(0.002)
        raise SandboxError("sandbox init did not start")

    def _relay_args(self) -> list[str]:
        """`<port>`, or `<VM port>:<host port>` for a port relayed elsewhere (a fault layer)."""
        return [str(p) if isinstance(p, int) else f"{p[0]}:{p[1]}" for p in self.relay_ports]

    def _start_relay(self, netns_path: str, init_pid: int, vm_dir: Path) -> tuple[int, int]:
        with open(vm_dir / "relay.log", "ab") as log:
            relay = subprocess.Popen(
                [HOST_PYTHON, str(RELAY), netns_path, str(init_pid), *self._relay_args()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        assert relay.stdout is not None
        ready, _, _ = select.select([relay.stdout], [], [], 10)
        line = relay.stdout.readline() if ready else b""
        relay.stdout.close()
        if line.strip() != b"ready":
            relay.kill()
            relay.wait()
            raise SandboxError(f"relay did not start; see {vm_dir / 'relay.log'}")
        # the relay is reaped by whoever inherits it; keep Popen from warning about it
        threading.Thread(target=relay.wait, daemon=True).start()
        return (relay.pid, _start_time(relay.pid))

    def _wait_for_ssh(self, record: RunRecord, vm_dir: Path) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self._alive(record):
                raise SandboxError(
                    f"VM {record.vm_key} died while booting: {_tail(vm_dir / 'console.log')}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((record.address, SSH_PORT), timeout=0.2),
            ):
                return
            time.sleep(0.01)
        raise SandboxError(f"VM {record.vm_key}: sshd not reachable after {BOOT_TIMEOUT_S:.0f} s")


class RecordsOnly:
    """A VM runner that runs nothing: it remembers which VMs are "running" (scale tests)."""

    def __init__(self, subnet: str = "10.213.0.0/16") -> None:
        self.running: dict[str, str] = {}
        self._layout = Layout.of(Path("/"), subnet)
        self._next_slot = 0
        self._lock = threading.Lock()

    def prepare(self) -> None:
        pass

    def new_os_disk(self, path: Path, source: Path | None = None) -> None:
        pass

    def new_data_disk(self, path: Path, size_gb: int, source: Path | None = None) -> None:
        pass

    def copy_os_disk(self, source: Path, dest: Path) -> None:
        pass

    def copy_data_disk(self, source: Path, dest: Path) -> None:
        pass

    def boot(self, spec: BootSpec) -> str:
        """Mark the VM running and hand out a new (unreachable) address, as a real boot does."""
        with self._lock:
            slot = self._next_slot % self._layout.slot_count
            self._next_slot += 1
            self.running[spec.vm_key] = self._layout.guest_address(slot)
            return self.running[spec.vm_key]

    def shutdown(self, vm_key: str) -> None:
        with self._lock:
            self.running.pop(vm_key, None)

    def is_running(self, vm_key: str) -> bool:
        return vm_key in self.running

    def delete_disk(self, path: Path) -> None:
        pass

    def teardown_all(self) -> None:
        with self._lock:
            self.running.clear()


def _start_time(pid: int) -> int:
    ref = ProcessRef.of(pid)
    if ref is None:
        raise SandboxError(f"process {pid} vanished while starting")
    return ref.start_time


def _tail(path: Path, chars: int = 800) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return "(no console log)"
