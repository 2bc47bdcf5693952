"""The connection-string path against Azurite: the runtime's store and bus, and the data SAS."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from azure.storage.blob import BlobServiceClient

from shared.azure.blob_sas import read_only_container_url
from shared.bus import StageMessage
from shared.runtime import Runtime
from shared.state.machine import Stage, queue_name
from shared.state.record import Build


def test_the_runtime_reaches_table_and_queue_through_the_connection_string(
    runtime: Runtime,
) -> None:
    build = Build(id="bconn00001", request={"name": "x", "owner": "o"}, owner="o", token="t1")
    runtime.store.create(build)
    assert runtime.store.get("bconn00001").build.token == "t1"
    runtime.bus.send(StageMessage("bconn00001", Stage.MOUNT, "t1"))
    received = runtime.bus.client(queue_name(Stage.MOUNT)).receive_message()
    assert received is not None
    assert StageMessage.from_json(received.content).build_id == "bconn00001"


def test_a_key_signed_sas_reads_the_container_and_nothing_else(
    azurite_connection_string: str,
) -> None:
    service = BlobServiceClient.from_connection_string(azurite_connection_string)
    container = service.get_container_client("sas-check")
    if not container.exists():
        container.create_container()
    container.upload_blob("a.txt", b"hello", overwrite=True)
    url = read_only_container_url(azurite_connection_string, "sas-check")
    base, sas = url.split("?", 1)
    with urllib.request.urlopen(f"{base}/a.txt?{sas}", timeout=10) as response:
        assert response.read() == b"hello"
    put = urllib.request.Request(
        f"{base}/b.txt?{sas}", data=b"x", method="PUT", headers={"x-ms-blob-type": "BlockBlob"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(put, timeout=10)
    assert refused.value.code == 403


def test_a_keyless_connection_without_an_identity_is_refused() -> None:
    with pytest.raises(RuntimeError, match="no account key"):
        read_only_container_url("BlobEndpoint=https://acct.blob.core.windows.net", "c")
