"""The provisioning media a VM gets at boot: what Azure's platform hands the guest's cloud-init
and agent, written from the VM model.

The host writes plain files into a directory that the sandbox mounts read-only at `GUEST_MEDIA`.
At the first boot of a VM the guest init copies the NoCloud seed (`meta-data`, `user-data`) to
`/var/lib/cloud/seed/nocloud/` and `ovf-env.xml` to `/var/lib/waagent/`; the image's own
cloud-init and waagent do the rest. Azure's data source is its wire server and IMDS; NoCloud is
the stand-in, with the same content: the admin user with its SSH keys and sudo (what Azure's
data source makes of osProfile), then the VM's customData as the user's own cloud-config.
"""

from __future__ import annotations

import json
import shutil
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import yaml

from localcloud.sandbox.api import GuestConfig

GUEST_MEDIA = "/run/localcloud/provisioning"
GUEST_INIT = Path(__file__).with_name("guest_init.py")
# The groups Ubuntu's default user gets that a minimal Debian has too; sudo comes from the rule.
ADMIN_GROUPS = ["adm", "sudo"]


def meta_data(guest: GuestConfig, instance_id: str) -> bytes:
    return yaml.safe_dump({"instance-id": instance_id, "local-hostname": guest.hostname}).encode()


def platform_cloud_config(guest: GuestConfig) -> str:
    """What Azure's cloud-init data source does with osProfile: the admin user, keys, sudo."""
    user = {
        "name": guest.admin_username,
        "groups": ADMIN_GROUPS,
        "shell": "/bin/bash",
        "lock_passwd": True,
        "sudo": "ALL=(ALL) NOPASSWD:ALL",
        "ssh_authorized_keys": [k.strip() for k in guest.authorized_keys],
    }
    doc = {"users": [user], "disable_root": True, "ssh_pwauth": False}
    return "#cloud-config\n" + yaml.safe_dump(doc, sort_keys=False)


def _subtype(part: bytes) -> str:
    """The MIME subtype cloud-init gives a part by its first line (its "starts with" rule)."""
    head = part.lstrip()[:32]
    if head.startswith(b"#cloud-config"):
        return "cloud-config"
    if head.startswith(b"#!"):
        return "x-shellscript"
    if head.startswith(b"#include"):
        return "x-include-url"
    return "plain"


def user_data(guest: GuestConfig) -> bytes:
    """A multipart user-data: the platform's part first, then customData unchanged."""
    message = MIMEMultipart()
    message.attach(MIMEText(platform_cloud_config(guest), "cloud-config", "utf-8"))
    if guest.custom_data:
        text = guest.custom_data.decode("utf-8", errors="replace")
        message.attach(MIMEText(text, _subtype(guest.custom_data), "utf-8"))
    return message.as_bytes()


def ovf_env(guest: GuestConfig) -> bytes:
    """The provisioning document Azure presents and the agent keeps in /var/lib/waagent: waagent's
    deprovisioning reads the admin user's name from it (without it the user stays)."""
    keys = "".join(
        "<PublicKey><Fingerprint></Fingerprint>"
        f"<Path>/home/{escape(guest.admin_username)}/.ssh/authorized_keys</Path>"
        f"<Value>{escape(k.strip())}</Value></PublicKey>"
        for k in guest.authorized_keys
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1" \
xmlns:oe="http://schemas.dmtf.org/ovf/environment/1" \
xmlns:wa="http://schemas.microsoft.com/windowsazure" \
xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
 <wa:ProvisioningSection>
  <wa:Version>1.0</wa:Version>
  <LinuxProvisioningConfigurationSet xmlns="http://schemas.microsoft.com/windowsazure" \
xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
   <ConfigurationSetType>LinuxProvisioningConfiguration</ConfigurationSetType>
   <HostName>{escape(guest.hostname)}</HostName>
   <UserName>{escape(guest.admin_username)}</UserName>
   <DisableSshPasswordAuthentication>true</DisableSshPasswordAuthentication>
   <SSH><PublicKeys>{keys}</PublicKeys><KeyPairs></KeyPairs></SSH>
  </LinuxProvisioningConfigurationSet>
 </wa:ProvisioningSection>
 <wa:PlatformSettingsSection>
  <wa:Version>1.0</wa:Version>
  <PlatformSettings xmlns="http://schemas.microsoft.com/windowsazure" \
xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
   <KmsServerHostname>kms.core.windows.net</KmsServerHostname>
   <ProvisionGuestAgent>true</ProvisionGuestAgent>
   <GuestAgentPackageName i:nil="true"/>
  </PlatformSettings>
 </wa:PlatformSettingsSection>
</Environment>
""".encode()


def resolv_conf(host_file: Path = Path("/etc/resolv.conf")) -> str:
    """The host's name servers a VM can reach through its NAT (loopback ones it cannot)."""
    lines = []
    for line in host_file.read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver" and not words[1].startswith("127."):
            lines.append(f"nameserver {words[1]}")
    return "\n".join(lines) + "\n" if lines else ""


def network_ca_pem(folder: Path = Path("/usr/local/share/ca-certificates")) -> bytes:
    """CAs this machine's administrator added (a TLS-inspecting egress needs them in the VM too;
    an Azure VM's admin adds a corporate proxy's CA the same way)."""
    if not folder.is_dir():
        return b""
    return b"".join(p.read_bytes().strip() + b"\n" for p in sorted(folder.glob("*.crt")))


def write_media(
    media: Path,
    guest: GuestConfig | None,
    config: dict[str, Any],
    extra_ca_pem: bytes | None,
) -> None:
    """(Re)write the media directory for one boot. A `guest` means a first boot: the seed is
    written then; later boots keep what cloud-init already made of it. Readable by root only."""
    if media.exists():
        shutil.rmtree(media)
    media.mkdir(parents=True, mode=0o700)
    config = {**config, "first_boot": guest is not None}
    (media / "config.json").write_text(json.dumps(config, indent=2))
    if guest is not None:
        (media / "meta-data").write_bytes(meta_data(guest, guest.instance_id))
        (media / "user-data").write_bytes(user_data(guest))
        (media / "ovf-env.xml").write_bytes(ovf_env(guest))
    cas = (extra_ca_pem or b"").strip() + b"\n" + network_ca_pem()
    if cas.strip():
        (media / "extra-ca.pem").write_bytes(cas.strip() + b"\n")
    shutil.copy(GUEST_INIT, media / "guest_init.py")
