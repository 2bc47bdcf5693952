"""SandboxHost runs VMs as real Linux sandboxes: SSH, data disks, restart, image copies, relays."""

from __future__ import annotations

import asyncio
import email
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import asyncssh
import pytest
import yaml
from sandbox_guest import GuestIdentity, run, self_signed_ca_pem

from localcloud.sandbox import disks, network
from localcloud.sandbox.api import BootSpec, DataDisk
from localcloud.sandbox.host import RecordsOnly, SandboxHost
from localcloud.sandbox.processes import processes_mentioning
from localcloud.sandbox.provisioning import user_data

SUBNET = "10.219.0.0/16"
ROUTED_PORT = 18765
IS_ROOT = os.geteuid() == 0
root_only = pytest.mark.skipif(not IS_ROOT, reason="sandboxes need root")


# --- fixtures -------------------------------------------------------------------------------


class HostService:
    """An HTTP server on the host's 127.0.0.1 only, answering a fixed text."""

    def __init__(self) -> None:
        text = b"hello from the host loopback\n"

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args: object) -> None:
                pass

        self.text = text.decode()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def host_service() -> Iterator[HostService]:
    service = HostService()
    yield service
    service.close()


@pytest.fixture(scope="module")
def ca_pem() -> bytes:
    return self_signed_ca_pem()


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox-state")


@pytest.fixture(scope="module")
def sandbox(state_dir: Path, host_service: HostService, ca_pem: bytes) -> Iterator[SandboxHost]:
    if not IS_ROOT:
        pytest.skip("sandboxes need root")
    # The VM's ROUTED_PORT reaches the host service too: a port relayed elsewhere on the host.
    routes: list[int | tuple[int, int]] = [host_service.port, (ROUTED_PORT, host_service.port)]
    host = SandboxHost(state_dir, subnet=SUBNET, relay_ports=routes, extra_ca_pem=ca_pem)
    try:
        host.prepare()
        yield host
    finally:
        host.teardown_all()
    assert_nothing_left(host)


def assert_nothing_left(host: SandboxHost) -> None:
    layout = host.layout
    assert not network.our_netns(layout), subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True
    ).stdout
    assert not network.our_veths(layout)
    assert not disks.loops_under(layout.state_dir)
    assert str(layout.state_dir) not in Path("/proc/mounts").read_text()
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert layout.nft_table not in tables
    assert not processes_mentioning(
        [("guest_init.py", str(layout.vms_dir)), ("relay.py", layout.netns_prefix)]
    )


class Disks:
    """Disk paths of one test VM inside the state folder."""

    def __init__(self, sandbox: SandboxHost, name: str) -> None:
        self.root = sandbox.layout.state_dir / "disks" / name
        self.os = self.root / "os"
        self.data = self.root / "data-lun0"


def boot_spec(name: str, disk: Disks, guest: GuestIdentity) -> BootSpec:
    return BootSpec(name, disk.os, [DataDisk(0, disk.data)], guest.guest_config())


def boot_new(
    sandbox: SandboxHost,
    name: str,
    guest: GuestIdentity,
    data_gb: int,
    data_from: Path | None = None,
) -> tuple[Disks, str]:
    """A new VM `name` with a fresh OS disk and a data disk of `data_gb` (a copy of
    `data_from` grown to it, as from an image); its disks and address."""
    disk = Disks(sandbox, name)
    sandbox.new_os_disk(disk.os)
    sandbox.new_data_disk(disk.data, data_gb, source=data_from)
    return disk, sandbox.boot(boot_spec(name, disk, guest))


def timed_boot(sandbox: SandboxHost, spec: BootSpec) -> tuple[str, float]:
    started = time.monotonic()
    address = sandbox.boot(spec)
    return address, time.monotonic() - started


def run_record(sandbox: SandboxHost, vm_key: str) -> dict:
    return json.loads((sandbox.layout.vm_dir(vm_key) / "run.json").read_text())


FORMAT_AND_MOUNT = r"""
set -e
disk=/dev/disk/azure/scsi1/lun0
sudo parted -s "$disk" mklabel gpt mkpart primary xfs 0% 100%
for i in $(seq 100); do [ -e "$disk-part1" ] && break; sleep 0.05; done
sudo mkfs.xfs -q "$disk-part1"
uuid=$(sudo blkid -s UUID -o value "$disk-part1")
sudo mkdir -p /data
echo "UUID=$uuid /data xfs defaults,nofail 0 2" | sudo tee -a /etc/fstab >/dev/null
sudo mount /data
echo "$uuid"
"""


# --- tests without root ---------------------------------------------------------------------


def test_user_data_is_the_platform_part_then_custom_data_unchanged() -> None:
    guest = GuestIdentity.new("vm", "azureuser")
    config = guest.guest_config()
    message = email.message_from_bytes(user_data(config))
    parts = [p for p in message.walk() if not p.is_multipart()]
    assert [p.get_content_type() for p in parts] == ["text/cloud-config", "text/cloud-config"]
    platform = yaml.safe_load(parts[0].get_payload(decode=True))
    assert platform["users"][0]["name"] == "azureuser"
    assert platform["users"][0]["ssh_authorized_keys"] == config.authorized_keys
    assert parts[1].get_payload(decode=True) == config.custom_data
    script = user_data(replace(config, custom_data=b"#!/bin/sh\necho hi\n"))
    kinds = [p.get_content_type() for p in email.message_from_bytes(script).walk()]
    assert kinds[-1] == "text/x-shellscript"


def test_a_256_gb_data_disk_costs_no_space_until_written(tmp_path: Path) -> None:
    disk = tmp_path / "data.img"
    disks.new_data_disk(disk, 256)
    assert disk.stat().st_size == 256 * 1024**3
    assert disk.stat().st_blocks == 0
    disks.copy_data_disk(disk, tmp_path / "copy.img")
    assert (tmp_path / "copy.img").stat().st_blocks == 0
    disks.delete_disk(disk)
    disks.delete_disk(disk)  # idempotent
    assert not disk.exists()


def test_records_only_runs_nothing_but_remembers() -> None:
    runner = RecordsOnly()
    first = runner.boot(BootSpec("vm-1", Path("/nonexistent")))
    assert runner.is_running("vm-1")
    runner.shutdown("vm-1")
    assert not runner.is_running("vm-1")
    assert runner.boot(BootSpec("vm-1", Path("/nonexistent"))) != first


@root_only
def test_os_disk_copy_keeps_whiteouts_and_overlay_xattrs(tmp_path: Path) -> None:
    source = tmp_path / "os"
    disks.new_os_disk(source)
    whiteout = source / "upper" / "gone"
    os.mknod(whiteout, 0o020000, os.makedev(0, 0))
    opaque = source / "upper" / "dir"
    opaque.mkdir()
    os.setxattr(opaque, "trusted.overlay.opaque", b"y")
    disks.copy_os_disk(source, tmp_path / "image")
    copied = tmp_path / "image" / "upper"
    assert os.stat(copied / "gone").st_rdev == os.makedev(0, 0)
    assert os.getxattr(copied / "dir", "trusted.overlay.opaque") == b"y"
    assert (tmp_path / "image" / "work").is_dir()


# --- real sandboxes -------------------------------------------------------------------------


@pytest.mark.root
async def test_first_boot_provisions_user_hostname_host_key_ca_and_relay(
    sandbox: SandboxHost, host_service: HostService, ca_pem: bytes
) -> None:
    guest = GuestIdentity.new("vm-first", "azureuser")
    disk = Disks(sandbox, "first")
    sandbox.new_os_disk(disk.os)
    sandbox.new_data_disk(disk.data, 256)
    address, seconds = timed_boot(sandbox, boot_spec("first", disk, guest))
    print(f"boot to SSH: {seconds:.2f} s")
    assert seconds < 20  # two cloud-init stages run before sshd, as on Ubuntu
    assert sandbox.is_running("first")
    async with await guest.connect(address) as conn:
        assert (await run(conn, "hostname")).strip() == "vm-first"
        assert (await run(conn, "sudo -n id -u")).strip() == "0"
        assert (await run(conn, "echo $SHELL")).strip() == "/bin/bash"
        link = (await run(conn, "readlink /dev/disk/azure/scsi1/lun0")).strip()
        assert link.startswith("../../../loop")
        unformatted = await conn.run("sudo blkid /dev/disk/azure/scsi1/lun0")
        assert unformatted.exit_status != 0, "a new data disk must not carry a file system"
        bundle = await run(conn, "cat /etc/ssl/certs/ca-certificates.crt")
        assert ca_pem.decode().strip() in bundle
        relayed = await run(conn, f"curl -sS --max-time 5 http://127.0.0.1:{host_service.port}/")
        assert relayed == host_service.text
        routed = await run(conn, f"curl -sS --max-time 5 http://127.0.0.1:{ROUTED_PORT}/")
        assert routed == host_service.text
        assert (await run(conn, "cat /proc/1/cmdline | tr '\\0' ' '")).find("guest_init") >= 0
        # the host's own SSH host keys are not the guest's
        host_pub = Path("/etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[1]
        assert host_pub not in await run(conn, "sudo cat /etc/ssh/ssh_host_*.pub")
        # the state folder (other VMs' disks and keys) is not in the guest at all
        assert (await run(conn, f"ls -A {sandbox.layout.state_dir} 2>/dev/null || true")) == ""
        # the real cloud-init did the first boot and says so
        status = await run(conn, "cloud-init status --wait --long")
        assert "status: done" in status, status
    # nothing the VM wrote reaches the host
    assert not Path("/etc/sudoers.d/90-cloud-init-users").exists()
    assert (disk.os / "upper" / "etc" / "sudoers.d" / "90-cloud-init-users").exists()
    sandbox.shutdown("first")
    assert not sandbox.is_running("first")


@pytest.mark.root
async def test_the_guest_root_is_the_marketplace_image_not_the_host(
    sandbox: SandboxHost, tmp_path: Path
) -> None:
    host_file = Path("/var/tmp") / f"localcloud-host-only-{os.getpid()}"
    host_file.write_text("host secret\n")
    try:
        guest = GuestIdentity.new("vm-image", "azureuser")
        disk = Disks(sandbox, "image-root")
        sandbox.new_os_disk(disk.os)
        address = sandbox.boot(BootSpec("image-root", disk.os, [], guest.guest_config()))
        base = sandbox.base_root(BootSpec("x", disk.os).base_image)
        async with await guest.connect(address) as conn:
            seen = await conn.run(f"cat {host_file}")
            assert seen.exit_status != 0, "a host file is visible in the guest"
            os_release = await run(conn, "cat /etc/os-release")
            assert os_release == (base / "etc/os-release").read_text()
            for host_path in (str(Path.cwd()), "/work", str(sandbox.layout.state_dir), "/opt"):
                assert (await conn.run(f"test -e {host_path}")).exit_status != 0 or (
                    base / host_path.lstrip("/")
                ).exists(), f"host path {host_path} is visible in the guest"
            # as on Ubuntu's cloud image: python3 without venv/ensurepip, and no pip
            venv = await conn.run("python3 -m venv /tmp/env")
            assert venv.exit_status != 0 and "ensurepip" in str(venv.stdout) + str(venv.stderr)
            assert (await conn.run("python3 -m pip --version")).exit_status != 0
            # the image's own cloud-init and Azure agent, not stand-ins
            agent = await run(
                conn, "dpkg-query -W -f '${Package} ${Version}\\n' waagent cloud-init"
            )
            assert "waagent 2." in agent and "cloud-init 2" in agent
        sandbox.shutdown("image-root")
        assert not (disk.os / "upper" / "usr" / "bin" / "python3").exists(), "image copied up"
    finally:
        host_file.unlink()


@pytest.mark.root
async def test_first_boot_holds_the_dpkg_lock_as_apt_daily_does(sandbox: SandboxHost) -> None:
    guest = GuestIdentity.new("vm-lock", "azureuser")
    disk = Disks(sandbox, "lock")
    sandbox.new_os_disk(disk.os)
    spec = BootSpec("lock", disk.os, [], guest.guest_config(), first_boot_lock_s=6)
    address = sandbox.boot(spec)
    async with await guest.connect(address) as conn:
        apt = "sudo apt-get -q -o DPkg::Lock::Timeout={} install -y --no-download sudo"
        busy = await conn.run(apt.format(0))
        assert busy.exit_status != 0 and "Could not get lock" in str(busy.stderr)
        started = time.monotonic()
        await run(conn, apt.format(60))  # what the controller's scripts do: wait for it
        assert time.monotonic() - started > 1
    sandbox.shutdown("lock")
    # a later boot is not a first boot: no package job
    async with await guest.connect(sandbox.boot(replace(spec, guest=None))) as conn:
        await run(conn, apt.format(0))
    sandbox.shutdown("lock")


@pytest.mark.root
async def test_detached_job_survives_its_session_and_serves_through_a_port_forward(
    sandbox: SandboxHost,
) -> None:
    guest = GuestIdentity.new("vm-jobs", "azureuser")
    disk = Disks(sandbox, "jobs")
    sandbox.new_os_disk(disk.os)
    address = sandbox.boot(BootSpec("jobs", disk.os, [], guest.guest_config()))
    async with await guest.connect(address) as conn:
        await run(
            conn,
            "mkdir -p ~/site && echo served > ~/site/index.html && cd ~/site; "
            "setsid nohup python3 -m http.server 8899 --bind 127.0.0.1 "
            ">/dev/null 2>&1 </dev/null & echo started",
        )
    async with await guest.connect(address) as conn:
        body = ""
        for _ in range(100):  # the server needs a moment to listen
            try:
                reader, writer = await conn.open_connection("127.0.0.1", 8899)
            except asyncssh.ChannelOpenError:
                await asyncio.sleep(0.05)
                continue
            writer.write(b"GET /index.html HTTP/1.0\r\n\r\n")
            data = await reader.read()
            body = data.decode() if isinstance(data, bytes) else data
            writer.close()
            break
        assert body.endswith("served\n")
        # the orphaned job was re-parented to the sandbox's init, which reaps it
        processes = (await run(conn, "ps -o ppid=,args= -C python3")).splitlines()
        job = next(line for line in processes if "http.server" in line)
        assert job.split()[0] == "1"
    sandbox.shutdown("jobs")


@pytest.mark.root
async def test_an_ssh_drop_cuts_the_command_but_not_the_server_nor_a_detached_job(
    sandbox: SandboxHost,
) -> None:
    """The fault plan's SSH drop (localcloud.faults): open connections die mid-command."""
    guest = GuestIdentity.new("vm-drop", "azureuser")
    disk = Disks(sandbox, "drop")
    sandbox.new_os_disk(disk.os)
    address = sandbox.boot(BootSpec("drop", disk.os, [], guest.guest_config()))
    async with await guest.connect(address) as conn:
        await run(conn, "setsid nohup sleep 300 >/dev/null 2>&1 </dev/null & echo started")
        command = asyncio.ensure_future(conn.run("sleep 60", check=False))
        await asyncio.sleep(1)
        assert sandbox.drop_ssh("drop") >= 1
        try:
            result = await asyncio.wait_for(command, 20)
        except (asyncssh.ConnectionLost, asyncssh.DisconnectError, OSError):
            pass  # cut mid-command
        else:  # the channel closed under it: no exit status was ever sent
            assert result.exit_status in (None, -1), result
    async with await guest.connect(address) as conn:  # the server still accepts
        assert "sleep 300" in await run(conn, "ps -o args= -C sleep")
    sandbox.shutdown("drop")


@pytest.mark.root
async def test_data_disk_mounted_by_fstab_after_restart_with_a_new_address(
    sandbox: SandboxHost,
) -> None:
    guest = GuestIdentity.new("vm-disk", "azureuser")
    disk = Disks(sandbox, "disk")
    sandbox.new_os_disk(disk.os)
    sandbox.new_data_disk(disk.data, 256)
    spec = boot_spec("disk", disk, guest)
    first_address = sandbox.boot(spec)
    async with await guest.connect(first_address) as conn:
        uuid = (await run(conn, FORMAT_AND_MOUNT)).strip()
        await run(conn, "echo kept | sudo tee /data/marker")
        assert "lun0-part1" in await run(conn, "ls /dev/disk/azure/scsi1/")
    sandbox.shutdown("disk")
    assert disk.data.stat().st_blocks * 512 < 1024**3, "the disk file stays sparse"

    second_address, seconds = timed_boot(sandbox, spec)
    print(f"reboot to SSH: {seconds:.2f} s")
    assert second_address != first_address
    async with await guest.connect(second_address) as conn:
        assert (await run(conn, "findmnt -n -o SOURCE,FSTYPE /data")).split()[1] == "xfs"
        assert (await run(conn, "cat /data/marker")).strip() == "kept"
        assert uuid in await run(conn, "sudo blkid /dev/disk/azure/scsi1/lun0-part1")
    sandbox.shutdown("disk")


@pytest.mark.root
async def test_deprovisioned_copy_boots_as_a_new_vm_with_new_user_and_keys(
    sandbox: SandboxHost,
) -> None:
    builder = GuestIdentity.new("vm-build", "builder")
    build, address = boot_new(sandbox, "build", builder, 256)
    async with await builder.connect(address) as conn:
        await run(conn, FORMAT_AND_MOUNT)
        await run(conn, "echo data | sudo tee /data/marker; sudo mkdir -p /opt/tools")
        await run(conn, "sudo waagent -deprovision+user -force")
    sandbox.shutdown("build")

    image = Disks(sandbox, "image")
    sandbox.copy_os_disk(build.os, image.os)
    # what the real agent removed: the user and home, host keys, its provisioning record
    frozen = image.os / "upper"
    assert not (frozen / "home" / "builder").exists()
    assert not list((frozen / "etc" / "ssh").glob("ssh_host_*"))
    assert not (frozen / "var" / "lib" / "waagent" / "ovf-env.xml").exists()
    assert "builder:" not in (frozen / "etc" / "passwd").read_text()
    sandbox.copy_data_disk(build.data, image.data)
    sandbox.delete_disk(build.os)
    sandbox.delete_disk(build.data)

    user = GuestIdentity.new("vm-relaunch", "scientist")
    relaunch = Disks(sandbox, "relaunch")
    sandbox.new_os_disk(relaunch.os, source=image.os)
    sandbox.new_data_disk(relaunch.data, 256, source=image.data)
    relaunch_spec = boot_spec("relaunch", relaunch, user)
    address = sandbox.boot(relaunch_spec)
    async with await user.connect(address) as conn:
        # a new instance id (Azure's: the new VM's vmId) made cloud-init provision again
        instance = (await run(conn, "sudo cat /var/lib/cloud/data/instance-id")).strip()
        assert relaunch_spec.guest is not None and instance == relaunch_spec.guest.instance_id
        assert (await run(conn, "hostname")).strip() == "vm-relaunch"
        assert (await run(conn, "sudo -n whoami")).strip() == "root"
        assert (await conn.run("id builder")).exit_status != 0
        homes = (await run(conn, "ls /home")).split()
        assert "scientist" in homes and "builder" not in homes
        assert (await run(conn, "cat /data/marker")).strip() == "data"
        assert (await run(conn, "test -d /opt/tools && echo yes")).strip() == "yes"
    with pytest.raises((asyncssh.PermissionDenied, asyncssh.HostKeyNotVerifiable)):
        await builder.connect(address)

    # a second VM from the same image at the same time: its disk has the same XFS UUID,
    # which separate Azure VMs never notice; here both share one kernel
    twin = Disks(sandbox, "twin")
    sandbox.new_os_disk(twin.os, source=image.os)
    sandbox.new_data_disk(twin.data, 256, source=image.data)
    twin_user = GuestIdentity.new("vm-twin", "scientist")
    async with await twin_user.connect(sandbox.boot(boot_spec("twin", twin, twin_user))) as conn:
        assert (await run(conn, "cat /data/marker")).strip() == "data"
    sandbox.shutdown("twin")
    sandbox.shutdown("relaunch")


@pytest.mark.root
async def test_a_sandbox_killed_from_outside_is_not_running(sandbox: SandboxHost) -> None:
    guest = GuestIdentity.new("vm-kill", "azureuser")
    disk = Disks(sandbox, "kill")
    sandbox.new_os_disk(disk.os)
    sandbox.new_data_disk(disk.data, 1)
    sandbox.boot(boot_spec("kill", disk, guest))
    init_pid = run_record(sandbox, "kill")["init"][0]
    os.kill(init_pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while sandbox.is_running("kill") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not sandbox.is_running("kill")
    sandbox.shutdown("kill")  # cleans what the dead VM left
    assert not disks.loops_under(disk.root)


@pytest.mark.root
async def test_poweroff_in_the_guest_stops_the_vm(sandbox: SandboxHost) -> None:
    guest = GuestIdentity.new("vm-off", "azureuser")
    disk = Disks(sandbox, "off")
    sandbox.new_os_disk(disk.os)
    address = sandbox.boot(BootSpec("off", disk.os, [], guest.guest_config()))
    async with await guest.connect(address) as conn:
        await conn.run("sudo poweroff", timeout=30)
    deadline = time.monotonic() + 10
    while sandbox.is_running("off") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not sandbox.is_running("off")
    sandbox.shutdown("off")


@pytest.mark.root
def test_teardown_from_the_state_folder_alone_after_a_crash(
    sandbox: SandboxHost, host_service: HostService
) -> None:
    # a second owner of the same state folder, as after a restart of the emulator
    owner = SandboxHost(sandbox.layout.state_dir, subnet=SUBNET, relay_ports=[host_service.port])
    guest = GuestIdentity.new("vm-crash", "azureuser")
    disk = Disks(sandbox, "crash")
    owner.new_os_disk(disk.os)
    owner.new_data_disk(disk.data, 1)
    owner.boot(boot_spec("crash", disk, guest))
    assert disks.loops_under(sandbox.layout.state_dir)
    del owner  # the owner "crashes": nothing in memory is left

    subprocess.run(
        [
            sys.executable,
            "-m",
            "localcloud.sandbox",
            "teardown",
            "--state-dir",
            str(sandbox.layout.state_dir),
        ],
        check=True,
        timeout=60,
    )
    assert_nothing_left(sandbox)
    assert not sandbox.is_running("crash")
    if not [t for t in network.our_tables() if t != sandbox.layout.nft_table]:
        assert not sandbox.layout.ip_forward_record.exists()
    sandbox.prepare()  # the module's sandbox host goes on working for its finalizer


async def test_nvme_data_disks_appear_by_lun_and_the_mount_script_finds_them(
    sandbox: SandboxHost,
) -> None:
    """An NVMe VM (storageProfile.diskControllerType NVMe, v6 sizes) shows its data disks at
    /dev/disk/azure/data/by-lun/<N> only, as azure-vm-utils makes them; the controller's mount
    script finds the disk there."""
    guest = GuestIdentity.new("vm-nvme", "azureuser")
    disk = Disks(sandbox, "nvme")
    sandbox.new_os_disk(disk.os)
    sandbox.new_data_disk(disk.data, 16)
    spec = BootSpec("nvme", disk.os, [DataDisk(1, disk.data)], guest.guest_config(), "NVMe")
    address = sandbox.boot(spec)
    script = (Path(__file__).parents[2] / "shared/remote/scripts/mount_disk.sh").read_text()
    async with await guest.connect(address) as conn:
        assert (await run(conn, "readlink /dev/disk/azure/data/by-lun/1")).startswith(
            "../../../../loop"
        )
        assert (await conn.run("test -e /dev/disk/azure/scsi1/lun1")).exit_status != 0
        mounted = await conn.run("sudo bash -s 1 /data xfs", input=script)
        assert mounted.exit_status == 0, mounted.stderr
        result = json.loads(str(mounted.stdout).strip().splitlines()[-1])
        assert result["lun_link"] == "/dev/disk/azure/data/by-lun/1"
        assert (await run(conn, "findmnt -n -o FSTYPE /data")).strip() == "xfs"
        # The partition's link comes as udev would make it: shortly after the partition.
        listed = await run(
            conn,
            "for i in $(seq 50); do ls /dev/disk/azure/data/by-lun/ | grep -q 1-part1 "
            "&& break; sleep 0.1; done; ls /dev/disk/azure/data/by-lun/",
        )
        assert "1-part1" in listed
    sandbox.shutdown("nvme")


async def test_a_data_disk_made_larger_than_its_image_is_grown_by_the_mount_script(
    sandbox: SandboxHost,
) -> None:
    """A VM made from an image with a larger data disk (diskSizeGB above the image's, as a
    workstation may ask) finds the partition and file system at the image's size; the mount
    script, run again, grows both to fill the disk and keeps its UUID in fstab."""
    script = (Path(__file__).parents[2] / "shared/remote/scripts/mount_disk.sh").read_text()
    guest = GuestIdentity.new("vm-small", "azureuser")
    disk, address = boot_new(sandbox, "small", guest, 4)
    async with await guest.connect(address) as conn:
        mounted = await conn.run("sudo bash -s 0 /data xfs", input=script)
        assert mounted.exit_status == 0, mounted.stderr
        uuid = json.loads(str(mounted.stdout).strip().splitlines()[-1])["uuid"]
        await run(conn, "echo kept | sudo tee /data/kept.txt")
    sandbox.shutdown("small")

    _, address = boot_new(sandbox, "large", guest, 12, data_from=disk.data)  # image's, grown
    async with await guest.connect(address) as conn:
        # Mounted already, as the image's fstab line mounts it at boot on Azure.
        part = (await run(conn, "readlink -f /dev/disk/azure/scsi1/lun0")).strip() + "p1"
        await run(conn, f"sudo mkdir -p /data && sudo mount {part} /data")
        grown = await conn.run("sudo bash -s 0 /data xfs", input=script)
        assert grown.exit_status == 0, grown.stderr
        assert json.loads(str(grown.stdout).strip().splitlines()[-1])["uuid"] == uuid
        size_gib = int((await run(conn, "df --output=size -B1G /data | tail -n1")).strip())
        assert size_gib >= 11, await run(conn, "lsblk; df -h /data")
        assert (await run(conn, "cat /data/kept.txt")).strip() == "kept"
        again = await conn.run("sudo bash -s 0 /data xfs", input=script)  # nothing left to do
        assert again.exit_status == 0 and "growing" not in str(again.stderr), again.stderr
    sandbox.shutdown("large")


# The controller's own deprovisioning call, in a process the test kills as a recycled
# Functions host dies: SIGKILL, its TCP connection gone mid-script.
_DEPROVISION_CALL = r"""
import asyncio, sys
from shared.remote import render
from shared.ssh.runner import SshTarget, connect

async def main() -> None:
    host, user, key_file, host_key = sys.argv[1:5]
    target = SshTarget(host=host, port=22, username=user,
                       client_private_key=open(key_file).read(), host_public_key=host_key)
    async with connect(target) as runner:
        await render.run_now(runner, render.deprovision(), 120)

asyncio.run(main())
"""


@pytest.mark.root
async def test_deprovisioning_cut_off_by_a_killed_controller_finishes_and_then_turns_logins_away(
    sandbox: SandboxHost, tmp_path: Path
) -> None:
    """The chaos run's finding: the host was killed while capture's deprovisioning ran in its
    SSH session. The guest must end deprovisioned all the same (the script runs detached), and
    the controller's next login must be told apart from a passing drop: turned away, every
    time (shared.steps.capture reads that as done)."""
    from shared.ssh.errors import SshTurnedAway
    from shared.ssh.runner import SshTarget, connect

    guest = GuestIdentity.new("vm-cut", "builder")
    disk = Disks(sandbox, "cut")
    sandbox.new_os_disk(disk.os)
    sandbox.new_data_disk(disk.data, 256)
    address = sandbox.boot(boot_spec("cut", disk, guest))
    key_file = tmp_path / "client"
    key_file.write_bytes(guest.client_key.export_private_key())
    host_line = guest.host_key.export_public_key().decode().strip()
    async with await guest.connect(address) as watcher:  # outlives the user, as sessions do
        await run(
            watcher,
            "sudo cloud-init status --wait >/dev/null; sudo mkdir -p /var/lib/labimage/jobs/j1",
        )
        # Hold the script in its first wait (cloud-init looks busy while its result is away).
        await run(watcher, "sudo mv /run/cloud-init/result.json /run/cloud-init/result.held")
        call = subprocess.Popen(
            [sys.executable, "-c", _DEPROVISION_CALL, address, "builder", str(key_file), host_line],
            cwd=Path(__file__).resolve().parents[2],
        )
        try:
            deadline = time.monotonic() + 60
            while "status --wait" not in await run(
                watcher, "ps -eo args= | grep [c]loud-init || true"
            ):
                assert call.poll() is None and time.monotonic() < deadline, "never got that far"
                await asyncio.sleep(0.2)
            call.send_signal(signal.SIGKILL)
            call.wait(10)
            await asyncio.sleep(1)
        finally:
            if call.poll() is None:
                call.kill()
        await run(watcher, "sudo mv /run/cloud-init/result.held /run/cloud-init/result.json")
        deadline = time.monotonic() + 60
        while (await watcher.run("id builder")).exit_status == 0:
            assert time.monotonic() < deadline, "deprovisioning did not go on without its session"
            await asyncio.sleep(0.5)
        deadline = time.monotonic() + 30
        while await run(watcher, "pgrep -f '[d]eprovision[.]sh' || true"):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.5)
        assert not (await run(watcher, "ls /etc/ssh/ | grep ssh_host_ || true")).strip()
        assert (await watcher.run("test -e /var/lib/labimage/jobs")).exit_status != 0

    target = SshTarget(
        host=address, port=22, username="builder",
        client_private_key=key_file.read_text(), host_public_key=host_line,
    )  # fmt: skip
    for _ in range(3):
        with pytest.raises(SshTurnedAway):
            async with connect(target):
                pass
    sandbox.shutdown("cut")
