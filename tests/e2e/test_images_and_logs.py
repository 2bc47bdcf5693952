"""Images, image.replace and build logs end to end on localcloud, through the `labimage` CLI.

One small build makes an image; then two builds replace it side by side: one fails at install
(a package version that does not exist) and must leave the old image as it was and its
installer log readable after cleanup; the other (the seed request, relaunch included) succeeds,
takes the name and kept every job's log and its executed notebooks.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.core.exceptions import ResourceNotFoundError
from rich.console import Console

from labimage_cli.commands import Consoles
from labimage_cli.main import main as labimage
from localcloud.funchost.easyauth import mint_token
from shared.azure.naming import BUILD_TAG
from tests.e2e.conftest import ADMIN_ROLE, TEST_PRINCIPAL, Cloud

pytestmark = [pytest.mark.e2e, pytest.mark.root]

IMAGE = "li-team-image"
# A version of a package the build installs anyway that was never published: the installer
# fails on it without asking the registry for any name the build would not ask for.
MISSING_VERSION = "numpy==0.0.1"


@pytest.fixture(scope="module")
def builds(cloud: Cloud) -> Iterator[dict[str, str]]:
    # The old image, made as cheaply as a build can: Jupyter only, no data, no notebooks, no
    # relaunch. The two replacing builds then run side by side.
    first = cloud.seed_request(
        name="first-image",
        data=[],
        repositories=[],
        notebooks={"run": []},
        image={"name": IMAGE},
        relaunch={"verify": False, "keep_running": False},
    )
    first["python"]["packages"] = ["jupyterlab>=4"]
    ids = {"first": cloud.submit(first)}
    status = cloud.wait(ids["first"])
    assert status["state"] == "succeeded", status["error"]
    failing = cloud.seed_request(name="replace-fails", image={"name": IMAGE, "replace": True})
    packages = [p for p in failing["python"]["packages"] if not p.startswith("numpy")]
    failing["python"]["packages"] = [*packages, MISSING_VERSION]
    ids["failing"] = cloud.submit(failing)
    ids["replacing"] = cloud.submit(
        cloud.seed_request(name="replace-works", image={"name": IMAGE, "replace": True})
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(cloud.wait, (ids["failing"], ids["replacing"])))
    yield ids


def cli(cloud: Cloud, *argv: str) -> tuple[int, str, str]:
    """Run `labimage` as the test principal; (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    consoles = Consoles(Console(file=out, width=200), Console(file=err, width=200))
    token = mint_token(cloud.state_dir / "funchost", TEST_PRINCIPAL, roles=(ADMIN_ROLE,))
    code = labimage(["--api-url", cloud.api, "--token", token, *argv], consoles)
    return code, out.getvalue(), err.getvalue()


def image_tag(cloud: Cloud, name: str) -> str | None:
    image = cloud.azure().compute.images.get(cloud.settings.resource_group, name)
    return (image.tags or {}).get(BUILD_TAG)


def test_a_failed_replacing_build_leaves_the_old_image_and_its_install_log_readable(
    cloud: Cloud, builds: dict[str, str]
) -> None:
    status = cloud.status(builds["failing"])
    assert status["state"] == "failed"
    assert "install" in (status["error"] or "")
    assert cloud.store().get(builds["failing"]).build.stages["cleanup"].state == "succeeded"

    code, listing, _ = cli(cloud, "logs", builds["failing"])
    assert code == 0
    assert "build.install-python.log" in listing
    code, log, _ = cli(cloud, "logs", builds["failing"], "build.install-python")
    assert code == 0
    assert "numpy" in log and "0.0.1" in log  # the installer's own words, VM gone


def test_a_succeeded_build_kept_every_jobs_log_and_its_executed_notebooks(
    cloud: Cloud, builds: dict[str, str]
) -> None:
    code, body, _ = cli(cloud, "logs", builds["replacing"], "--json")
    names = [entry["name"] for entry in json.loads(body)]
    for job in ("install-python", "pull-data-0", "clone-0", "notebooks-verify-0"):
        assert f"build.{job}.log" in names, names
    assert "relaunch.notebooks-relaunch-0.log" in names, names
    notebooks = [n for n in names if n.startswith("build.notebooks-verify-0.")]
    notebooks = [n for n in notebooks if n.endswith(".ipynb")]
    assert notebooks, names
    code, text, _ = cli(cloud, "logs", builds["replacing"], notebooks[0])
    assert code == 0 and json.loads(text)["cells"]  # a notebook a user can open
    # The data pull worked through a SAS URL; none is left in what was kept.
    code, pull, _ = cli(cloud, "logs", builds["replacing"], "build.pull-data-0")
    assert code == 0 and re.search(r"sig=(?!REDACTED)", pull) is None


def test_the_replacing_build_took_the_name_and_the_cli_lists_shows_and_deletes_it(
    cloud: Cloud, builds: dict[str, str]
) -> None:
    status = cloud.status(builds["replacing"])
    assert status["state"] == "succeeded", status["error"]
    assert image_tag(cloud, IMAGE) == builds["replacing"]
    assert status["image_id"].endswith(f"/images/{IMAGE}")
    record = cloud.store().get(builds["replacing"]).build
    assert record.outputs["replace"]["outcome"] == "replaced"
    assert record.outputs["replace"]["old_build"] == builds["first"]
    group = cloud.settings.resource_group
    names = [i.name for i in cloud.azure().compute.images.list_by_resource_group(group)]
    assert f"{IMAGE}-{builds['replacing']}" not in names  # the temporary image is gone

    code, listed, _ = cli(cloud, "images", "list", "--json")
    assert code == 0
    mine = [i for i in json.loads(listed)["images"] if i["name"] == IMAGE]
    assert [(i["build_id"], i["request_name"]) for i in mine] == [
        (builds["replacing"], "replace-works")
    ]
    code, shown, _ = cli(cloud, "images", "show", IMAGE)
    assert code == 0 and builds["replacing"] in shown
    code, _, err = cli(cloud, "images", "show", "no such;image")
    assert code == 2 and "image names use letters" in err  # refused at the field, 400

    code, deleted, _ = cli(cloud, "images", "delete", IMAGE)
    assert code == 0 and f"deleting image {IMAGE}" in deleted
    _wait_gone(cloud, IMAGE)
    code, _, err = cli(cloud, "images", "show", IMAGE)
    assert code != 0 and "404" in err


def _wait_gone(cloud: Cloud, name: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            cloud.azure().compute.images.get(cloud.settings.resource_group, name)
        except ResourceNotFoundError:
            return
        time.sleep(1)
    pytest.fail(f"image {name} was not deleted in {timeout_s} s")
