"""Settings parsing: connection strings and identity-based storage connections."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared import settings as settings_module
from shared.settings import (
    connection_has_secret,
    get_settings,
    identity_connection,
    service_endpoint,
    storage_connection,
)

AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5PT0=;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
)
REQUIRED = {
    "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
    "LABIMAGE_RESOURCE_GROUP": "rg-builds",
    "LABIMAGE_LOCATION": "westeurope",
    "LABIMAGE_SSH_SOURCE_CIDR": "203.0.113.0/28",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A clean environment with the required non-storage settings; re-read after each test."""
    for name in list(settings_module.os.environ):
        if name.startswith(("AzureWebJobsStorage", "LABIMAGE_", "AZURE_")):
            monkeypatch.delenv(name)
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_a_connection_string_is_used_as_it_is(env: pytest.MonkeyPatch) -> None:
    env.setenv("AzureWebJobsStorage", AZURITE)
    s = get_settings()
    assert s.storage_connection == AZURITE
    assert s.data_storage_connection is None  # never the controller's own account by default
    assert connection_has_secret(s.storage_connection)
    assert service_endpoint(s.storage_connection, "queue") == (
        "http://127.0.0.1:10001/devstoreaccount1"
    )
    # No explicit table endpoint: derived from the account name, as the SDK does.
    assert service_endpoint(s.storage_connection, "table") == (
        "http://devstoreaccount1.table.core.windows.net"
    )
    assert s.managed_identity_client_id is None


def test_an_account_name_means_identity_based_storage(env: pytest.MonkeyPatch) -> None:
    env.setenv("AzureWebJobsStorage__accountName", "stlabimage")
    env.setenv("AzureWebJobsStorage__credential", "managedidentity")
    env.setenv("AzureWebJobsStorage__clientId", "11111111-2222-3333-4444-555555555555")
    env.setenv("LABIMAGE_DATA_STORAGE__accountName", "stresearchdata")
    s = get_settings()
    assert not connection_has_secret(s.storage_connection)
    for service in ("blob", "queue", "table"):
        assert service_endpoint(s.storage_connection, service) == (
            f"https://stlabimage.{service}.core.windows.net"
        )
    assert service_endpoint(s.data_storage_connection, "blob") == (
        "https://stresearchdata.blob.core.windows.net"
    )
    assert s.managed_identity_client_id == "11111111-2222-3333-4444-555555555555"


def test_service_uris_override_the_account_name() -> None:
    env = {
        "X__accountName": "acct",
        "X__queueServiceUri": "https://queues.example.test/",
    }
    connection = identity_connection("X", env)
    assert connection is not None
    assert service_endpoint(connection, "queue") == "https://queues.example.test"
    assert service_endpoint(connection, "blob") == "https://acct.blob.core.windows.net"


def test_a_plain_connection_string_wins_over_identity_settings() -> None:
    env = {"X": AZURITE, "X__accountName": "acct"}
    assert storage_connection("X", env) == AZURITE
    assert storage_connection("Y", env) is None


def test_azure_client_id_names_the_identity_when_the_host_setting_is_absent(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("AzureWebJobsStorage__accountName", "stlabimage")
    env.setenv("AZURE_CLIENT_ID", "abc")
    assert get_settings().managed_identity_client_id == "abc"


def test_missing_storage_is_a_clear_error(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(RuntimeError, match="AzureWebJobsStorage"):
        get_settings()


def test_a_sas_connection_string_counts_as_a_secret() -> None:
    assert connection_has_secret(
        "BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=sv=1"
    )
    assert not connection_has_secret("BlobEndpoint=https://a.blob.core.windows.net")


@pytest.mark.parametrize("value", ["", "*", "Internet", "Any", "0.0.0.0/0", "10.0.0.0/8", "::/0"])
def test_the_ssh_source_is_required_and_never_the_whole_internet(
    env: pytest.MonkeyPatch, value: str
) -> None:
    env.setenv("AzureWebJobsStorage", AZURITE)
    env.setenv("LABIMAGE_SSH_SOURCE_CIDR", value)
    with pytest.raises(RuntimeError, match="LABIMAGE_SSH_SOURCE_CIDR"):
        get_settings()


def test_a_single_address_is_the_ssh_source(env: pytest.MonkeyPatch) -> None:
    env.setenv("AzureWebJobsStorage", AZURITE)
    env.setenv("LABIMAGE_SSH_SOURCE_CIDR", "203.0.113.7")
    assert get_settings().ssh_source_cidr == "203.0.113.7/32"


def test_data_containers_are_a_list_of_patterns(env: pytest.MonkeyPatch) -> None:
    env.setenv("AzureWebJobsStorage", AZURITE)
    env.setenv("LABIMAGE_DATA_CONTAINERS", " ooi-data, research-* ,")
    assert get_settings().data_containers == ("ooi-data", "research-*")
