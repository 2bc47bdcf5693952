"""KeyVaultKeyStore with the real SecretClient against localcloud's Key Vault emulator.

The store is the one Runtime picks from settings, signed in with DefaultAzureCredential through
the emulator's managed-identity endpoint (IDENTITY_ENDPOINT / IDENTITY_HEADER), as on Azure.
"""

from __future__ import annotations

import dataclasses
import os
import ssl
import stat
import traceback
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.identity import DefaultAzureCredential

from localcloud.arm.server import RunningEmulator
from localcloud.arm.testing import emulator_in_thread, post_admin
from shared.errors import PermanentError, TemporaryError
from shared.runtime import Runtime
from shared.settings import Settings
from shared.ssh.keys import KeyKind, KeyPair, generate_keypair
from shared.ssh.keyvault import KeyVaultKeyStore, secret_name

API = "api-version=2025-07-01"


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningEmulator]:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with emulator_in_thread(tmp_path / "lc") as (running, _):
        for name, value in running.identity_env().items():
            monkeypatch.setenv(name, value)
        yield running


@pytest.fixture
def store(settings: Settings, emulator: RunningEmulator) -> KeyVaultKeyStore:
    vault_settings = dataclasses.replace(
        settings, key_vault_url=emulator.vault_url, arm_ca_bundle=str(emulator.ca_pem)
    )
    keys = Runtime(vault_settings).keys
    assert isinstance(keys, KeyVaultKeyStore)
    return keys


def _build_id() -> str:
    return "b" + os.urandom(5).hex()[:9]


def _pairs(build_id: str) -> dict[KeyKind, KeyPair]:
    return {kind: generate_keypair(f"labimage-{build_id}") for kind in ("client", "host")}


def _full_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error)) + repr(error)


def test_save_load_delete_round_trip(store: KeyVaultKeyStore, emulator: RunningEmulator) -> None:
    build_id = _build_id()
    pairs = _pairs(build_id)
    for kind, pair in pairs.items():
        store.save(build_id, kind, pair)
    for kind, pair in pairs.items():
        assert store.load(build_id, kind) == pair

    # The vault's state holds secrets: owner-only.
    state_file = emulator.ca_pem.parent / "keyvault.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600

    store.delete(build_id)
    for kind in pairs:
        with pytest.raises(KeyError):
            store.load(build_id, kind)
    store.delete(build_id)  # idempotent

    # Purged: the names can be used again.
    again = generate_keypair(f"labimage-{build_id}")
    store.save(build_id, "client", again)
    assert store.load(build_id, "client") == again


def test_save_replaces_the_pair(store: KeyVaultKeyStore) -> None:
    build_id = _build_id()
    first, second = generate_keypair("one"), generate_keypair("two")
    store.save(build_id, "host", first)
    store.save(build_id, "host", second)
    assert store.load(build_id, "host") == second


def test_missing_key_is_a_key_error_without_material(store: KeyVaultKeyStore) -> None:
    build_id = _build_id()
    store.save(build_id, "host", _pairs(build_id)["host"])
    with pytest.raises(KeyError) as caught:
        store.load(build_id, "client")
    assert "PRIVATE KEY" not in _full_text(caught.value)
    assert build_id in str(caught.value)


def test_save_over_a_deleted_but_unpurged_secret(store: KeyVaultKeyStore) -> None:
    """As after a purge the vault refused: the secret is recovered and takes a new version."""
    build_id = _build_id()
    old, new = generate_keypair("old"), generate_keypair("new")
    store.save(build_id, "client", old)
    store.client.begin_delete_secret(secret_name(build_id, "client")).wait()
    with pytest.raises(KeyError):
        store.load(build_id, "client")
    store.save(build_id, "client", new)
    assert store.load(build_id, "client") == new


def _raw_get(emulator: RunningEmulator, url: str, token: str | None) -> urllib.error.HTTPError:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    context = ssl.create_default_context(cafile=str(emulator.ca_pem))
    request = urllib.request.Request(url, headers=headers)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10, context=context)
    return caught.value


def test_requests_without_a_vault_token_are_refused(
    store: KeyVaultKeyStore, emulator: RunningEmulator
) -> None:
    build_id = _build_id()
    store.save(build_id, "client", _pairs(build_id)["client"])
    url = f"{emulator.vault_url}/secrets/{secret_name(build_id, 'client')}?{API}"

    # No token: the challenge names the token's audience (the vault's host minus its first label).
    missing = _raw_get(emulator, url, None)
    assert missing.code == 401
    port = emulator.vault_url.rsplit(":", 1)[1]
    assert f'resource="https://0.0.1:{port}"' in missing.headers["WWW-Authenticate"]

    # A forged token, and a real one for Resource Manager: both 401, no secret in the body.
    management = DefaultAzureCredential().get_token("https://management.azure.com/.default")
    for token in ("bm90LWEtdG9rZW4.deadbeef", management.token):
        refused = _raw_get(emulator, url, token)
        assert refused.code == 401
        assert b"PRIVATE KEY" not in refused.read()


class _WrongAudienceCredential:
    """A managed-identity token, but for Resource Manager whatever the vault asks for."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return DefaultAzureCredential().get_token("https://management.azure.com/.default")


def test_the_store_reports_a_refused_token_without_key_material(
    emulator: RunningEmulator,
) -> None:
    build_id = _build_id()
    pair = generate_keypair("refused")
    wrong = KeyVaultKeyStore(
        emulator.vault_url,
        _WrongAudienceCredential(),
        str(emulator.ca_pem),
    )
    with pytest.raises(PermanentError) as caught:
        wrong.save(build_id, "client", pair)
    text = _full_text(caught.value)
    assert "401" in text
    assert secret_name(build_id, "client") in text
    for line in pair.private_openssh.splitlines()[1:-1]:
        assert line not in text
    with pytest.raises(PermanentError) as caught:
        wrong.load(build_id, "client")
    assert "401" in str(caught.value)


def test_secrets_survive_an_emulator_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The vault's state is in the state folder, like the ARM snapshot."""
    build_id = _build_id()
    pair = generate_keypair("persisted")
    for round_ in range(2):
        with emulator_in_thread(tmp_path / "lc") as (running, _):
            for name, value in running.identity_env().items():
                monkeypatch.setenv(name, value)
            keys = KeyVaultKeyStore(
                running.vault_url, DefaultAzureCredential(), str(running.ca_pem)
            )
            if round_ == 0:
                keys.save(build_id, "host", pair)
            else:
                assert keys.load(build_id, "host") == pair


@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "throttle", "retryAfter": 0},
        {"kind": "server_error", "status": 503},
        {"kind": "reset"},
    ],
)
def test_vault_faults_past_the_clients_retries_are_temporary_and_then_pass(
    store: KeyVaultKeyStore, emulator: RunningEmulator, rule: dict[str, object]
) -> None:
    """localcloud's fault plan on Key Vault calls: the stage retries, nothing is lost."""
    build_id = _build_id()
    pairs = _pairs(build_id)
    store.save(build_id, "client", pairs["client"])
    post_admin(emulator, "faults", {"rules": [{"match": "VAULT GET", "count": 8, **rule}]})
    with pytest.raises(TemporaryError, match=secret_name(build_id, "client")):
        store.load(build_id, "client")
    post_admin(emulator, "faults", {})
    assert store.load(build_id, "client") == pairs["client"]


def test_the_link_key_is_made_only_by_the_signer_and_every_process_reads_that_one(
    settings: Settings, emulator: RunningEmulator
) -> None:
    """The one-click link key on Key Vault: checking a link never makes the key (two
    processes making it at once would each keep their own), the auto-stop scan's signing
    makes it once, and a process that starts later reads that same key and accepts its links."""
    from datetime import UTC, datetime, timedelta

    from shared.workstations import links

    rt = Runtime(
        dataclasses.replace(
            settings, key_vault_url=emulator.vault_url, arm_ca_bundle=str(emulator.ca_pem)
        )
    )
    links._vault_keys.clear()
    assert links.signing_key(rt) is None  # a checker before any warning: nothing to accept
    assert links.signing_key(rt) is None  # and it did not make one
    made = links.signing_key(rt, make=True)
    assert made is not None and len(made) == 64
    assert links.signing_key(rt, make=True) == made  # kept, not made again

    links._vault_keys.clear()  # another process, started later
    read = links.signing_key(rt)
    assert read == made
    now = datetime.now(UTC)
    signed = links.sign(made, "wabc000001", "skip", now + timedelta(hours=1))
    query = dict(
        item.split("=", 1) for item in links.url_of("https://x", signed).split("?", 1)[1].split("&")
    )
    assert links.check(read, "wabc000001", "skip", query, now).signature == signed.signature
