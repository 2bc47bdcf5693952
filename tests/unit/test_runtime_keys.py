"""Runtime.keys picks the store the settings name; the kept VM's key instructions match it."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.runtime import Runtime
from shared.settings import Settings
from shared.ssh.keys import DirectoryKeyStore
from shared.ssh.keyvault import KeyVaultKeyStore, download_command, secret_name

VAULT = "https://labimage-kv.vault.azure.net/"


def _settings(**overrides: str | None) -> Settings:
    return Settings(
        storage_connection="UseDevelopmentStorage=true",
        data_storage_connection="UseDevelopmentStorage=true",
        subscription_id="00000000-0000-0000-0000-000000000000",
        resource_group="labimage-test",
        location="westeurope",
        **overrides,  # type: ignore[arg-type]
    )


def test_key_vault_when_its_url_is_set(tmp_path: Path) -> None:
    keys = Runtime(_settings(key_vault_url=VAULT, ssh_key_dir=str(tmp_path))).keys
    assert isinstance(keys, KeyVaultKeyStore)
    assert keys.vault_url == VAULT


def test_the_key_folder_without_a_vault(tmp_path: Path) -> None:
    keys = Runtime(_settings(ssh_key_dir=str(tmp_path))).keys
    assert isinstance(keys, DirectoryKeyStore)
    assert keys.path == tmp_path


def test_neither_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError) as caught:
        _ = Runtime(_settings()).keys
    assert "LABIMAGE_KEY_VAULT_URL" in str(caught.value)
    assert "LABIMAGE_SSH_KEY_DIR" in str(caught.value)


def test_secret_names_are_key_vault_names() -> None:
    assert secret_name("b1f3a9x0q2", "client") == "labimage-b1f3a9x0q2-client"
    assert secret_name("my-build", "host") == "labimage-my-build-host"
    for bad in ("b_1", "../x", "", "b 1"):
        with pytest.raises(ValueError):
            secret_name(bad, "client")


def test_download_command_names_the_vault_or_the_secret_id() -> None:
    assert download_command(VAULT, "b1", "~/.ssh/labimage-b1") == (
        "az keyvault secret download --vault-name labimage-kv --name labimage-b1-client "
        "--file ~/.ssh/labimage-b1 && chmod 600 ~/.ssh/labimage-b1"
    )
    # localcloud's vault is a bare address: no vault name to give, so the secret's id.
    local = download_command("https://127.0.0.1:37446", "b1", "k")
    assert "--id https://127.0.0.1:37446/secrets/labimage-b1-client --file k" in local
