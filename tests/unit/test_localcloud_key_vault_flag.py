"""`localcloud up --key-vault`: the Functions host gets the vault's URL instead of a key folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcloud.cli import _ports_from, parse_args
from localcloud.instance import Layout, Ports, app_settings, endpoints


def test_the_key_folder_by_default(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    settings = app_settings(layout, Ports(), "secret")
    assert settings["LABIMAGE_SSH_KEY_DIR"] == str(layout.keys_dir)
    assert "LABIMAGE_KEY_VAULT_URL" not in settings
    assert not parse_args(["up"]).key_vault


def test_key_vault_replaces_the_key_folder(tmp_path: Path) -> None:
    ports = Ports(vault=37446)
    settings = app_settings(Layout(tmp_path), ports, "secret", key_vault=True)
    assert settings["LABIMAGE_KEY_VAULT_URL"] == "https://127.0.0.1:37446"
    assert "LABIMAGE_SSH_KEY_DIR" not in settings
    # The vault's certificate comes from the same CA as the ARM emulator's.
    assert settings["LABIMAGE_ARM_CA_BUNDLE"] == str(Layout(tmp_path).ca_pem)
    assert endpoints(Layout(tmp_path), ports)["vault"] == "https://127.0.0.1:37446"
    assert parse_args(["up", "--key-vault"]).key_vault


def test_the_vault_port_follows_the_arm_port_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCALCLOUD_VAULT_PORT", raising=False)
    monkeypatch.delenv("LOCALCLOUD_ARM_PORT", raising=False)
    assert _ports_from(parse_args(["up", "--arm-port", "37443"])).vault == 37446
    assert _ports_from(parse_args(["up", "--vault-port", "37999"])).vault == 37999
    assert _ports_from(parse_args(["up"])).vault == Ports().arm + 3
