"""Per-build Ed25519 key pairs: the client key the controller logs in with and the guest's host key.

The host key is made here and handed to the VM through cloud-init, so the controller knows the
key to pin before the VM has ever booted. Private keys never appear in a repr, a log or an error.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import asyncssh

KeyKind = Literal["client", "host"]

_BUILD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class KeyPair:
    """Ed25519 pair: OpenSSH private key text, public key as one authorized_keys line."""

    private_openssh: str = field(repr=False)
    public_line: str


def generate_keypair(comment: str) -> KeyPair:
    """A fresh Ed25519 key pair; `comment` ends the public line (e.g. "labimage-b-1f3a")."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    return KeyPair(
        private_openssh=key.export_private_key("openssh").decode("ascii"),
        public_line=key.export_public_key("openssh").decode("ascii").strip(),
    )


def public_key_of(private_openssh: str) -> str:
    """The authorized_keys line belonging to a private key (for checks after loading)."""
    key = asyncssh.import_private_key(private_openssh)
    return key.export_public_key("openssh").decode("ascii").strip()


def host_key_cloud_config(host_private: str, host_public: str) -> str:
    """A `#cloud-config` document that installs this Ed25519 host key on first boot.

    `ssh_deletekeys: true` removes host keys baked into the image; with `ssh_keys` given,
    cloud-init writes these keys instead of generating new ones, so the key is known in advance.
    """
    private_lines = host_private.strip().splitlines()
    if not private_lines or "PRIVATE KEY" not in private_lines[0]:
        raise ValueError("host_private is not an OpenSSH private key")
    public = host_public.strip()
    if "\n" in public or not public.startswith("ssh-ed25519 "):
        raise ValueError("host_public is not one ssh-ed25519 public key line")
    block = "\n".join("    " + line for line in private_lines)
    return (
        "#cloud-config\n"
        "ssh_deletekeys: true\n"
        "ssh_keys:\n"
        "  ed25519_private: |\n"
        f"{block}\n"
        # A JSON string is a valid YAML scalar: no quoting rules of our own.
        f"  ed25519_public: {json.dumps(public)}\n"
    )


class KeyStore(Protocol):
    """Where a build's key pairs live between stages (a directory offline, Key Vault on Azure)."""

    def save(self, build_id: str, kind: KeyKind, pair: KeyPair) -> None:
        """Store the pair, replacing an earlier one of the same build and kind."""

    def load(self, build_id: str, kind: KeyKind) -> KeyPair:
        """The stored pair; KeyError when there is none."""

    def delete(self, build_id: str) -> None:
        """Forget every key of the build. Idempotent."""


def ensure_build_keys(store: KeyStore, build_id: str) -> tuple[KeyPair, KeyPair]:
    """The build's (login key, guest host key) pairs, made and stored on first use.

    The API calls this once when it accepts a build, before any stage can run, so two
    deliveries of one stage message can never make two different key pairs.
    """
    pairs: list[KeyPair] = []
    for kind in ("client", "host"):
        try:
            pairs.append(store.load(build_id, kind))
        except KeyError:
            pair = generate_keypair(f"labimage-{build_id}-{kind}")
            store.save(build_id, kind, pair)
            pairs.append(pair)
    return pairs[0], pairs[1]


def _checked_build_id(build_id: str) -> str:
    if not _BUILD_ID.fullmatch(build_id):
        raise ValueError("build id is not a valid key name (letters, digits, '-', '_')")
    return build_id


class DirectoryKeyStore:
    """Keys as files `<build_id>.<kind>` and `<build_id>.<kind>.pub` in one directory, mode 0600."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _files(self, build_id: str, kind: KeyKind) -> tuple[Path, Path]:
        stem = f"{_checked_build_id(build_id)}.{kind}"
        return self.path / stem, self.path / f"{stem}.pub"

    def save(self, build_id: str, kind: KeyKind, pair: KeyPair) -> None:
        self._private_folder()
        private_file, public_file = self._files(build_id, kind)
        _write_private(private_file, pair.private_openssh)
        _write_private(public_file, pair.public_line + "\n")

    def _private_folder(self) -> None:
        """The folder exists, is a real folder (not a planted link) and only its owner may
        enter it: an existing folder that is looser is tightened to 0700."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(self.path)
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
            raise RuntimeError(f"the SSH key folder {self.path} is not a plain folder")
        if info.st_mode & 0o077:
            os.chmod(self.path, 0o700)

    def load(self, build_id: str, kind: KeyKind) -> KeyPair:
        private_file, public_file = self._files(build_id, kind)
        try:
            private = private_file.read_text(encoding="ascii")
            public = public_file.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            raise KeyError(f"no {kind} key stored for build {build_id}") from None
        return KeyPair(private_openssh=private, public_line=public)

    def delete(self, build_id: str) -> None:
        for kind in ("client", "host"):
            for file in self._files(build_id, kind):
                file.unlink(missing_ok=True)


def _write_private(path: Path, text: str) -> None:
    """Write through a temporary file created 0600, then rename: never a readable half-file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a leftover, or a link planted to redirect the write
    # O_EXCL with O_NOFOLLOW: the file is new and ours, never an existing file or a link target.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
