"""`labimage diff` and `labimage rebuild` against the real Functions app (local host, Azurite):
manifests and the data blob are real blobs; builds are written as the pipeline leaves them."""

from __future__ import annotations

import json

from shared.manifest.sbom import sbom_json
from shared.manifest.store import store_manifest
from shared.runtime import Runtime
from shared.settings import Settings
from shared.state.record import BuildState
from tests.integration.test_cli_api import Api, api, run, seeded  # noqa: F401 (fixture)
from tests.integration.test_manifests_api import BLOB, put_blob
from tests.manifest_samples import manifest_of


def app_settings(api: Api) -> Settings:  # noqa: F811
    return Settings(
        storage_connection=api.connection,
        data_storage_connection=api.connection,
        data_containers=("ooi-data",),
        subscription_id="00000000-0000-0000-0000-000000000000",
        resource_group="labimage-cli-test",
        location="westeurope",
    )


def test_diff_and_rebuild_take_a_build_id_or_a_manifest(api: Api) -> None:  # noqa: F811
    rt = Runtime(app_settings(api))
    blob = put_blob(rt, b"depth,temp\n1,4.2\n")
    old = seeded(api, BuildState.SUCCEEDED, owner="alice@example.org")
    first = manifest_of(old.id, blob)
    a = store_manifest(rt.settings, None, first, sbom_json(first).encode())
    api.store.replace(api.store.get(old.id), old.with_outputs(manifest={"sha256": a}))
    second = manifest_of(old.id, blob, numpy="2.1.0")
    b = store_manifest(rt.settings, None, second, sbom_json(second).encode())

    shown = run(api, "diff", old.id, b)
    assert shown.code == 0, shown.err
    assert "numpy" in shown.out and "upgraded" in shown.out and "2.1.0" in shown.out
    same = run(api, "diff", a, a, "--json")
    assert json.loads(same.out)["equal"] is True

    rebuilt = run(api, "rebuild", old.id)
    assert rebuilt.code == 0, rebuilt.err
    new_id = rebuilt.out.split()[1]
    assert api.store.get(new_id).build.request["reproduce"] == {"from_manifest": a, "data": "exact"}

    put_blob(rt, b"depth,temp\n1,9.9\n")
    refused = run(api, "rebuild", a)
    assert refused.code != 0 and BLOB in refused.err and "409" in refused.err
    latest = run(api, "rebuild", a, "--data-latest")
    assert latest.code == 0, latest.err

    pending = seeded(api, BuildState.RUNNING)
    missing = run(api, "rebuild", pending.id)
    assert missing.code == 2 and "no manifest" in missing.err
