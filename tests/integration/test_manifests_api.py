"""The manifests API and the rebuild request, called as the host calls them, against Azurite:
manifests and blobs are real blobs, the build record a real table entity."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from azure.storage.blob import BlobServiceClient
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from shared.manifest.sbom import sbom_json
from shared.manifest.store import store_manifest
from shared.runtime import Runtime
from tests.integration.test_function_app import (  # noqa: F401 (fixtures)
    SEED,
    app_runtime,
    call,
    functions,
    http,
)
from tests.manifest_samples import CONTAINER, manifest_of
from tests.principals import ADMIN, BOB

BLOB = "AT4212/ctd/cast1.csv"


def put_blob(rt: Runtime, data: bytes) -> dict[str, Any]:
    """Upload the data blob; what the guest's pull would have recorded for it."""
    service = BlobServiceClient.from_connection_string(rt.settings.data_storage_connection or "")
    container = service.get_container_client(CONTAINER)
    if not container.exists():
        container.create_container()
    client = container.upload_blob(BLOB, data, overwrite=True)
    props = client.get_blob_properties()
    return {
        "name": BLOB,
        "size": len(data),
        "md5": base64.b64encode(hashlib.md5(data).digest()).decode(),
        "etag": props.etag,
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def stored(rt: Runtime, manifest: dict[str, Any]) -> str:
    return store_manifest(rt.settings, None, manifest, sbom_json(manifest).encode())


def submit_seed(functions: dict[str, Any]) -> str:  # noqa: F811
    response = call(functions, "submit_build")(http("POST", "builds", SEED))
    assert response.status_code == 202
    return str(json.loads(response.get_body())["id"])


def get(functions: dict[str, Any], name: str, path: str, who: Any = None, **route: str) -> Any:  # noqa: F811
    kwargs = {"who": who} if who else {}
    response = call(functions, name)(http("GET", path, **kwargs, **route))
    return response.status_code, json.loads(response.get_body())


def test_a_manifest_its_sbom_and_a_diff_are_served_to_the_build_owner(
    functions: dict[str, Any],  # noqa: F811
    app_runtime: Runtime,  # noqa: F811
) -> None:
    build_id = submit_seed(functions)
    blob = put_blob(app_runtime, b"depth,temp\n1,4.2\n")
    a = stored(app_runtime, manifest_of(build_id, blob))
    b = stored(
        app_runtime,
        manifest_of(build_id, {**blob, "md5": "x" * 22 + "==", "sha256": "e" * 64}, numpy="2.1.0"),
    )

    code, manifest = get(functions, "get_manifest", f"manifests/{a}", sha256=a)
    assert code == 200 and manifest["base_image"]["exact_version"] == "24.04.202501010"
    assert (
        hashlib.sha256(
            json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        == a
    )
    assert get(functions, "get_manifest", f"manifests/{a}", BOB, sha256=a)[0] == 404
    assert get(functions, "get_manifest", f"manifests/{a}", ADMIN, sha256=a)[0] == 200
    assert get(functions, "get_manifest", "manifests/nope", sha256="nope")[0] == 404

    code, sbom = get(functions, "get_sbom", f"manifests/{a}/sbom", sha256=a)
    assert code == 200
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(sbom)) is None
    assert {c["purl"] for c in sbom["components"]} >= {
        "pkg:pypi/numpy@1.26.4",
        "pkg:deb/ubuntu/bash@5.2.21-2ubuntu4?arch=amd64",
    }

    code, diff = get(functions, "diff_manifests", f"manifests/{a}/diff/{b}", a=a, b=b)
    assert code == 200 and diff["equal"] is False
    changes = {(c["kind"], c["name"], c["change"]) for c in diff["changes"]}
    assert changes == {
        ("python_package", "numpy", "upgraded"),
        ("data_blob", f"{CONTAINER}/{BLOB}", "changed"),
    }
    code, same = get(functions, "diff_manifests", f"manifests/{a}/diff/{a}", a=a, b=a)
    assert same["equal"] is True and same["changes"] == []
    assert get(functions, "diff_manifests", "x", BOB, a=a, b=b)[0] == 404


def test_a_rebuild_repeats_the_manifest_and_refuses_a_changed_blob_by_name(
    functions: dict[str, Any],  # noqa: F811
    app_runtime: Runtime,  # noqa: F811
) -> None:
    build_id = submit_seed(functions)
    blob = put_blob(app_runtime, b"depth,temp\n1,4.2\n")
    digest = stored(app_runtime, manifest_of(build_id, blob))
    submit = call(functions, "submit_build")

    response = submit(http("POST", "builds", json.dumps({"from_manifest": digest}).encode()))
    assert response.status_code == 202, response.get_body()
    rebuilt = app_runtime.store.get(json.loads(response.get_body())["id"]).build.request
    assert rebuilt["vm"]["image"]["version"] == "24.04.202501010"
    assert rebuilt["repositories"][0]["ref"] == "c" * 40
    assert rebuilt["data"][0]["prefix"] == "AT4212/"  # files land where they did
    assert rebuilt["reproduce"] == {"from_manifest": digest, "data": "exact"}
    assert rebuilt["image"]["name"].startswith("jupyter-ooi-ubuntu2404-r")

    put_blob(app_runtime, b"depth,temp\n1,9.9\n")  # same size, new content
    refused = submit(http("POST", "builds", json.dumps({"from_manifest": digest}).encode()))
    assert refused.status_code == 409
    problem = json.loads(refused.get_body())["problems"][0]
    assert problem["field"] == "data[0].blobs" and BLOB in problem["message"]
    assert '"data": "latest"' in problem["message"]

    latest = {"from_manifest": digest, "data": "latest", "image_name": "ooi-latest"}
    response = submit(http("POST", "builds", json.dumps(latest).encode()))
    assert response.status_code == 202
    rebuilt = app_runtime.store.get(json.loads(response.get_body())["id"]).build.request
    assert rebuilt["reproduce"]["data"] == "latest"
    assert rebuilt["image"]["name"] == "ooi-latest" and rebuilt["image"]["gallery"] is None


def test_a_rebuild_request_is_validated_field_by_field(
    functions: dict[str, Any],  # noqa: F811
    app_runtime: Runtime,  # noqa: F811
) -> None:
    submit = call(functions, "submit_build")
    bad = submit(http("POST", "builds", json.dumps({"from_manifest": "abc", "data": "x"}).encode()))
    assert bad.status_code == 400
    fields = {p["field"] for p in json.loads(bad.get_body())["problems"]}
    assert fields == {"from_manifest", "data"}
    missing = submit(http("POST", "builds", json.dumps({"from_manifest": "f" * 64}).encode()))
    assert missing.status_code == 404
    build_id = submit_seed(functions)
    digest = stored(app_runtime, manifest_of(build_id, put_blob(app_runtime, b"x")))
    others = submit(http("POST", "builds", json.dumps({"from_manifest": digest}).encode(), who=BOB))
    assert others.status_code == 404  # bob may not read alice's manifest


def test_a_rebuild_sent_through_the_build_requests_queue_is_the_same_as_over_http(
    functions: dict[str, Any],  # noqa: F811
    app_runtime: Runtime,  # noqa: F811
    monkeypatch: Any,
) -> None:
    """A pipeline that submits through the queue can also ask for an exact rebuild; a changed
    blob is a recorded rejection naming it, answered on reply_to."""
    from azure.functions.queue import QueueMessage

    monkeypatch.setattr("functions.submissions.get_runtime", lambda: app_runtime)
    build_id = submit_seed(functions)
    blob = put_blob(app_runtime, b"depth,temp\n1,4.2\n")
    digest = stored(app_runtime, manifest_of(build_id, blob))
    reply_to = "replies-rebuild"
    app_runtime.bus.client(reply_to)

    def deliver(body: dict[str, Any], message_id: str) -> None:
        message = {"request": body, "client_request_id": message_id, "reply_to": reply_to}
        call(functions, "submit_from_queue")(
            QueueMessage(id=message_id, body=json.dumps(message).encode(), dequeue_count=1)
        )

    deliver({"from_manifest": digest}, "rebuild-1")
    [accepted] = [
        json.loads(bytes(m.content))
        for m in app_runtime.bus.client(reply_to).receive_messages(max_messages=32)
    ]
    assert accepted["status"] == "accepted", accepted
    rebuilt = app_runtime.store.get(accepted["id"]).build.request
    assert rebuilt["reproduce"] == {"from_manifest": digest, "data": "exact"}
    assert rebuilt["repositories"][0]["ref"] == "c" * 40

    put_blob(app_runtime, b"depth,temp\n1,9.9\n")
    deliver({"from_manifest": digest}, "rebuild-2")
    answers = [
        json.loads(bytes(m.content))
        for m in app_runtime.bus.client(reply_to).receive_messages(max_messages=32)
    ]
    [refused] = [a for a in answers if a["client_request_id"] == "rebuild-2"]
    assert refused["status"] == "rejected" and refused["error"] == "data changed"
    assert BLOB in refused["problems"][0]["message"]


def test_a_build_request_that_names_reproduce_itself_is_refused_naming_the_field(
    functions: dict[str, Any],  # noqa: F811
    app_runtime: Runtime,  # noqa: F811
) -> None:
    """Only the controller's expansion of {"from_manifest": ...} sets reproduce: bob cannot
    repeat alice's manifest (and read its differences) by writing reproduce himself."""
    build_id = submit_seed(functions)
    digest = stored(app_runtime, manifest_of(build_id, put_blob(app_runtime, b"x")))
    request = {**json.loads(SEED), "owner": "bob@example.org"}
    request["reproduce"] = {"from_manifest": digest, "data": "latest"}
    submit = call(functions, "submit_build")

    refused = submit(http("POST", "builds", json.dumps(request).encode(), who=BOB))
    assert refused.status_code == 400
    [problem] = json.loads(refused.get_body())["problems"]
    assert problem["field"] == "reproduce" and '{"from_manifest": ...}' in problem["message"]
    assert [b.id for b in app_runtime.store.list(page_size=10).builds] == [build_id]
    # Not even for one's own manifest: the one way to ask is {"from_manifest": ...}.
    request["owner"] = "alice@example.org"
    assert submit(http("POST", "builds", json.dumps(request).encode())).status_code == 400


def test_a_queued_build_request_that_names_reproduce_is_a_rejection_naming_the_field(
    functions: dict[str, Any],  # noqa: F811
    app_runtime: Runtime,  # noqa: F811
    monkeypatch: Any,
) -> None:
    from azure.functions.queue import QueueMessage

    monkeypatch.setattr("functions.submissions.get_runtime", lambda: app_runtime)
    request = {**json.loads(SEED), "reproduce": {"from_manifest": "f" * 64, "data": "exact"}}
    reply_to = "replies-reproduce"
    app_runtime.bus.client(reply_to)
    message = {"request": request, "client_request_id": "r-1", "reply_to": reply_to}
    call(functions, "submit_from_queue")(
        QueueMessage(id="r-1", body=json.dumps(message).encode(), dequeue_count=1)
    )
    [answer] = [
        json.loads(bytes(m.content))
        for m in app_runtime.bus.client(reply_to).receive_messages(max_messages=32)
    ]
    assert answer["status"] == "rejected"
    assert [p["field"] for p in answer["problems"]] == ["reproduce"]
    assert app_runtime.store.list(page_size=10).builds == []
