"""PID 1 of a sandbox VM: builds the root file system, boots the image's own cloud-init, starts
sshd, reaps, acts as udev.

Started by the host as
`nsenter --net=<netns> unshare --mount --uts --ipc --pid --fork --propagation private
 /usr/bin/python3 guest_init.py --boot <boot.json>`. That first part runs on the host's python:
it mounts the overlay (the base image below, the VM's OS disk above), /proc, /sys, /dev, /run,
the provisioning media, and pivots into it. Then it executes itself again with the *image's*
python3 (`--guest`), standard library only, so nothing of the host runs inside the VM.
Its stdout/stderr is the VM's console log on the host.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time

MEDIA = "/run/localcloud/provisioning"
SEED_DIR = "/var/lib/cloud/seed/nocloud"
OVF_ENV = "/var/lib/waagent/ovf-env.xml"
DPKG_LOCKS = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock")
GUEST_PYTHON = "/usr/bin/python3"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
CA_LOCAL_COPY = "/usr/local/share/ca-certificates/localcloud-ca.crt"
AZURE_LUN_DIR = "/dev/disk/azure/scsi1"
AZURE_NVME_LUN_DIR = "/dev/disk/azure/data/by-lun"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
SYS_PIVOT_ROOT = 155  # x86_64

libc = ctypes.CDLL(None, use_errno=True)


def log(message: str) -> None:
    print(f"[init {time.strftime('%H:%M:%S')}] {message}", flush=True)


def mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str = "") -> None:
    rc = libc.mount(
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype or 'bind'} on {target}: {os.strerror(err)}")


def pivot_root(new_root: str) -> None:
    """Make `new_root` the root and drop the host's tree (runc's pivot_root(".", ".") trick)."""
    os.chdir(new_root)
    if libc.syscall(SYS_PIVOT_ROOT, b".", b".") != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"pivot_root: {os.strerror(err)}")
    if libc.umount2(b".", MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount old root: {os.strerror(err)}")
    os.chdir("/")


# --- root file system ------------------------------------------------------------------------


def build_root(cfg: dict) -> None:
    root = cfg["root"]
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    mount(
        "overlay",
        root,
        "overlay",
        0,
        f"lowerdir={cfg['base']},upperdir={cfg['upper']},workdir={cfg['work']},index=off,xino=off",
    )
    mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount("sysfs", f"{root}/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    build_dev(f"{root}/dev")
    mount("tmpfs", f"{root}/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
    mount("tmpfs", f"{root}/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    media_target = f"{root}{MEDIA}"
    os.makedirs(media_target, exist_ok=True)
    mount(cfg["media"], media_target, None, MS_BIND)
    mount("none", media_target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    pivot_root(root)


def build_dev(dev: str) -> None:
    mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=755,size=64k")
    for name, major, minor, mode in (
        ("null", 1, 3, 0o666),
        ("zero", 1, 5, 0o666),
        ("full", 1, 7, 0o666),
        ("random", 1, 8, 0o666),
        ("urandom", 1, 9, 0o666),
        ("tty", 5, 0, 0o666),
    ):
        make_node(f"{dev}/{name}", major, minor, mode)
    os.makedirs(f"{dev}/pts")
    mount(
        "devpts",
        f"{dev}/pts",
        "devpts",
        MS_NOSUID | MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620,gid=5",
    )
    os.symlink("pts/ptmx", f"{dev}/ptmx")
    os.makedirs(f"{dev}/shm")
    mount("tmpfs", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{i}", f"{dev}/{name}")
    os.symlink("/proc/self/fd", f"{dev}/fd")


def make_node(path: str, major: int, minor: int, mode: int, block: bool = False) -> None:
    kind = 0o060000 if block else 0o020000
    os.mknod(path, kind | mode, os.makedev(major, minor))
    os.chmod(path, mode)


# --- a minimal udev for the data disks ------------------------------------------------------


def lun_links(disk: dict) -> tuple[str, str]:
    """(folder, name prefix) of a data disk's LUN links as Azure's udev rules make them: SCSI
    `scsi1/lun<N>` (WALinuxAgent), NVMe `data/by-lun/<N>` (azure-vm-utils, ACD
    azure-virtual-machine-utilities.md); partitions add `-part<P>`."""
    if str(disk.get("controller", "SCSI")).lower() == "nvme":
        return AZURE_NVME_LUN_DIR, str(disk["lun"])
    return AZURE_LUN_DIR, f"lun{disk['lun']}"


def sync_disk_nodes(disks: list[dict]) -> None:
    """Create /dev nodes and Azure's LUN links for each loop disk and its partitions."""
    for disk in disks:
        loop = disk["loop"]
        link_dir, base = lun_links(disk)
        os.makedirs(link_dir, exist_ok=True)
        wanted = {loop: base}
        for entry in _partitions(loop):
            wanted[entry] = f"{base}-part{entry[len(loop) + 1 :]}"
        for name, link in wanted.items():
            sysdir = f"/sys/block/{loop}" if name == loop else f"/sys/block/{loop}/{name}"
            try:
                with open(f"{sysdir}/dev") as f:
                    major, minor = (int(x) for x in f.read().split(":"))
            except (FileNotFoundError, ValueError):
                continue
            node = f"/dev/{name}"
            try:
                st = os.stat(node)
                if st.st_rdev != os.makedev(major, minor):
                    os.unlink(node)
                    raise FileNotFoundError
            except FileNotFoundError:
                make_node(node, major, minor, 0o660, block=True)
                os.chown(node, 0, 6)  # group disk
            link_path = f"{link_dir}/{link}"
            target = os.path.relpath(node, link_dir)
            if os.path.islink(link_path) and os.readlink(link_path) == target:
                continue
            if os.path.lexists(link_path):
                os.unlink(link_path)
            os.symlink(target, link_path)
        # partitions that vanished (the guest repartitioned)
        for link in os.listdir(link_dir):
            if link.startswith(f"{base}-part") and link not in wanted.values():
                target = os.readlink(f"{link_dir}/{link}").rsplit("/", 1)[-1]
                os.unlink(f"{link_dir}/{link}")
                if os.path.exists(f"/dev/{target}"):
                    os.unlink(f"/dev/{target}")


def has_partition_table(device: str) -> bool:
    """An MBR signature or a GPT header in the first two sectors."""
    try:
        with open(device, "rb") as f:
            head = f.read(1024)
    except OSError:
        return False
    return head[510:512] == b"\x55\xaa" or head[512:520] == b"EFI PART"


class PartitionScanner:
    """Adds partitions the kernel did not: this kernel has no partition table parsers, so a
    table is only known to it when a tool adds partitions itself (parted, partx). At boot and
    after a re-read that dropped them, `partx --add` does what the kernel's scan would do.
    A table must be seen for a second before that, so a partitioning tool's own adds win."""

    PATIENCE = 10  # polls of 0.1 s

    def __init__(self) -> None:
        self.unpartitioned_polls: dict[str, int] = {}

    def scan_now(self, disks: list[dict]) -> None:
        for disk in disks:
            self._add(disk["loop"])

    def poll(self, disks: list[dict]) -> None:
        for disk in disks:
            loop = disk["loop"]
            if _partitions(loop) or not has_partition_table(f"/dev/{loop}"):
                self.unpartitioned_polls[loop] = 0
                continue
            self.unpartitioned_polls[loop] = self.unpartitioned_polls.get(loop, 0) + 1
            if self.unpartitioned_polls[loop] == self.PATIENCE:
                self._add(loop)

    @staticmethod
    def _add(loop: str) -> None:
        if has_partition_table(f"/dev/{loop}"):
            subprocess.run(
                ["partx", "--add", f"/dev/{loop}"],
                stdin=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )


def _partitions(loop: str) -> list[str]:
    try:
        entries = os.listdir(f"/sys/block/{loop}")
    except FileNotFoundError:
        return []
    return [e for e in entries if e.startswith(f"{loop}p") and e[len(loop) + 1 :].isdigit()]


# --- first boot: hand cloud-init and waagent what Azure's provisioning would ----------------


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, stdin=subprocess.DEVNULL)


def write_private(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def write_seed() -> None:
    """The NoCloud seed (meta-data with this VM's instance id, user-data) and ovf-env.xml.

    A new instance id makes cloud-init provision again, also on a disk copied from an image."""
    for name in ("meta-data", "user-data"):
        with open(f"{MEDIA}/{name}", "rb") as f:
            write_private(f"{SEED_DIR}/{name}", f.read())
    with open(f"{MEDIA}/ovf-env.xml", "rb") as f:
        write_private(OVF_ENV, f.read())
    log("NoCloud seed and ovf-env.xml written")


def install_extra_ca() -> None:
    """The CAs the VM's network needs (localcloud's own, the host network's TLS inspection)."""
    ca_path = f"{MEDIA}/extra-ca.pem"
    if not os.path.exists(ca_path):
        return
    with open(ca_path) as f:
        pem = f.read().strip() + "\n"
    os.makedirs(os.path.dirname(CA_LOCAL_COPY), exist_ok=True)
    with open(CA_LOCAL_COPY, "w") as f:  # update-ca-certificates keeps it in the bundle
        f.write(pem)
    with open(CA_BUNDLE) as f:
        bundle = f.read()
    if pem not in bundle:
        with open(CA_BUNDLE, "a") as f:
            f.write(("" if bundle.endswith("\n") else "\n") + pem)


# --- every boot -----------------------------------------------------------------------------


def restore_hostname() -> None:
    """As an init system does first: the UTS name from /etc/hostname (cloud-init may change it)."""
    try:
        with open("/etc/hostname") as f:
            name = f.read().strip()
    except FileNotFoundError:
        return
    if name:
        socket.sethostname(name)


def write_resolv_conf(text: str) -> None:
    """What DHCP hands a VM: the name servers it can reach (waagent's deprovision removes it)."""
    if os.path.islink("/etc/resolv.conf"):
        os.unlink("/etc/resolv.conf")
    with open("/etc/resolv.conf", "w") as f:
        f.write(text)


def mount_fstab() -> None:
    """`mount -a` as systemd would at boot. XFS refuses a second mount of one UUID in a kernel,
    which separate Azure VMs never see: retry such entries with `nouuid`."""
    sh("mount", "-a", check=False)
    with open("/proc/self/mounts") as f:
        mounted = {line.split()[1] for line in f}
    with open("/etc/fstab") as f:
        entries = [ln.split() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    for fields in entries:
        options = fields[3].split(",") if len(fields) > 3 else []
        xfs = len(fields) > 2 and fields[2] == "xfs"
        if xfs and fields[1] not in mounted and "noauto" not in options:
            sh("mount", "-o", "nouuid", fields[1], check=False)


def cloud_init_early() -> None:
    """cloud-init's first two stages (users, host keys, hostname), before sshd as on Ubuntu."""
    for stage in (("init", "--local"), ("init",)):
        code = sh("cloud-init", *stage, check=False).returncode
        log(f"cloud-init {' '.join(stage)} exited {code}")


def cloud_init_late() -> subprocess.Popen:
    """The config and final stages run on while sshd already answers (`cloud-init status --wait`
    is how a client knows they are done)."""
    return subprocess.Popen(
        ["/bin/sh", "-c", "cloud-init modules --mode=config; cloud-init modules --mode=final"],
        stdin=subprocess.DEVNULL,
    )


def hold_dpkg_lock(seconds: float) -> subprocess.Popen:
    """The first-boot package job (Ubuntu's apt-daily / unattended-upgrades): the dpkg locks are
    taken as apt takes them (fcntl) and held for `seconds`."""
    holder = (
        "import fcntl, os, sys, time\n"
        "held = []\n"
        "for path in sys.argv[2:]:\n"
        "    f = open(path, 'a'); fcntl.lockf(f, fcntl.LOCK_EX); held.append(f)\n"
        "time.sleep(float(sys.argv[1]))\n"
    )
    os.makedirs("/var/lib/dpkg", exist_ok=True)
    log(f"first-boot package job holds the dpkg lock for {seconds:g} s")
    return subprocess.Popen(
        [GUEST_PYTHON, "-c", holder, str(seconds), *DPKG_LOCKS], stdin=subprocess.DEVNULL
    )


def start_sshd() -> subprocess.Popen:
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    return subprocess.Popen(["/usr/sbin/sshd", "-D", "-e"], stdin=subprocess.DEVNULL)


def power_off(signum: int, frame: object) -> None:
    """`poweroff` in the guest: stop every process, flush, and end the VM (PID 1 exits)."""
    log("power off requested")
    os.kill(-1, signal.SIGKILL)
    os.sync()
    os._exit(0)


def serve(disks: list[dict]) -> None:
    """Reap every child forever, keep the disk nodes in sync, restart sshd if it dies."""
    scanner = PartitionScanner()
    sshd = start_sshd()
    log("sshd started")
    while True:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == sshd.pid:
                log(f"sshd exited with status {status}; restarting")
                sshd.returncode = status
                time.sleep(1)
                sshd = start_sshd()
        scanner.poll(disks)
        sync_disk_nodes(disks)
        time.sleep(0.1)


def boot_guest() -> None:
    """Runs on the image's python3 inside the VM's root."""
    with open(f"{MEDIA}/config.json") as f:
        cfg = json.load(f)
    signal.signal(signal.SIGTERM, power_off)
    restore_hostname()
    disks = cfg.get("disks", [])
    sync_disk_nodes(disks)
    PartitionScanner().scan_now(disks)
    sync_disk_nodes(disks)
    first_boot = bool(cfg.get("first_boot"))
    if first_boot:
        write_seed()
        install_extra_ca()
    write_resolv_conf(cfg.get("resolv_conf") or "")
    mount_fstab()
    cloud_init_early()
    lock_s = float(cfg.get("first_boot_lock_s") or 0)
    if first_boot and lock_s > 0:
        hold_dpkg_lock(lock_s)
    cloud_init_late()
    serve(disks)


def boot_host_side(boot_file: str) -> None:
    """Runs on the host's python in the new namespaces: make the root, then become the guest."""
    with open(boot_file) as f:
        cfg = json.load(f)
    build_root(cfg)
    os.execv(GUEST_PYTHON, [GUEST_PYTHON, f"{MEDIA}/guest_init.py", "--guest", boot_file])


def main() -> None:
    os.environ.clear()
    os.environ.update({"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "linux"})
    if sys.argv[1] == "--boot":
        boot_host_side(sys.argv[2])
    else:
        boot_guest()


if __name__ == "__main__":
    main()
