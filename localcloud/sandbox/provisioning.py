"""The provisioning media a VM gets at boot, like Azure's ovf-env CD and cloud-init's user data.

The host parses customData here (cloud-config `ssh_keys:`) and writes plain files into a
directory that the sandbox mounts read-only at `GUEST_MEDIA`; the guest init reads them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import yaml

from localcloud.sandbox.api import GuestConfig
from localcloud.sandbox.commands import SandboxError

GUEST_MEDIA = "/run/localcloud/provisioning"
WAAGENT_SCRIPT = Path(__file__).with_name("guest_waagent.py")
# cloud-init's `ssh_keys` names: <type>_private, <type>_public, <type>_certificate
HOST_KEY_TYPES = ("rsa", "ecdsa", "ed25519")


def host_keys_from_custom_data(custom_data: bytes | None) -> dict[str, str]:
    """File name -> content of the SSH host keys a cloud-config's `ssh_keys:` hands in."""
    if not custom_data:
        return {}
    text = custom_data.decode("utf-8", errors="replace")
    if not text.lstrip().startswith("#cloud-config"):
        return {}
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SandboxError(f"customData is not valid cloud-config YAML: {exc}") from None
    keys = (doc or {}).get("ssh_keys") or {}
    if not isinstance(keys, dict):
        raise SandboxError("cloud-config ssh_keys must be a mapping")
    files: dict[str, str] = {}
    for key_type in HOST_KEY_TYPES:
        private, public = keys.get(f"{key_type}_private"), keys.get(f"{key_type}_public")
        if private:
            files[f"ssh_host_{key_type}_key"] = str(private).rstrip("\n") + "\n"
            if public:
                files[f"ssh_host_{key_type}_key.pub"] = str(public).strip() + "\n"
            cert = keys.get(f"{key_type}_certificate")
            if cert:
                files[f"ssh_host_{key_type}_key-cert.pub"] = str(cert).strip() + "\n"
    return files


def write_media(
    media: Path, guest: GuestConfig | None, vm_key: str, extra_ca_pem: bytes | None
) -> None:
    """(Re)write the media directory for one boot. Private keys stay readable by root only."""
    if media.exists():
        shutil.rmtree(media)
    media.mkdir(parents=True, mode=0o700)
    host_keys = host_keys_from_custom_data(guest.custom_data if guest else None)
    config = {
        "vm_key": vm_key,
        "hostname": guest.hostname if guest else None,
        "admin_username": guest.admin_username if guest else None,
        "host_key_files": sorted(host_keys),
    }
    (media / "config.json").write_text(json.dumps(config, indent=2))
    if guest is not None:
        (media / "authorized_keys").write_text(
            "".join(k.strip() + "\n" for k in guest.authorized_keys)
        )
        if guest.custom_data is not None:
            (media / "user-data").write_bytes(guest.custom_data)
    keys_dir = media / "ssh_host_keys"
    keys_dir.mkdir(mode=0o700)
    for name, content in host_keys.items():
        target = keys_dir / name
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(content)
    if extra_ca_pem:
        (media / "extra-ca.pem").write_bytes(extra_ca_pem)
    shutil.copy(WAAGENT_SCRIPT, media / "waagent")
