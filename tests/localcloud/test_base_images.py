"""Base images: the configured archive is read from apt's files, the cache is keyed by the recipe,
shared, built once under a lock and atomically, and `down --purge` empties it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from localcloud.sandbox import base_images
from localcloud.sandbox.base_images import OFFERED, configured_sources

DEB822 = """\
Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://mirror.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_sources_come_from_both_apt_formats_for_the_suite_only(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    (tmp_path / "sources.list.d" / "other.list").write_text(
        "deb [arch=amd64] https://vendor.example/apt stable main\n"
        "deb http://old.example/debian bullseye main\n"
    )
    (tmp_path / "sources.list").write_text(
        "# nothing\ndeb http://list.example/debian bookworm main\n"
    )
    assert configured_sources("bookworm", tmp_path) == [
        "deb http://list.example/debian bookworm main",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://mirror.example/debian bookworm main contrib",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://mirror.example/debian bookworm-updates main contrib",
        "deb http://security.example/debian-security bookworm-security main",
    ]
    assert configured_sources("trixie", tmp_path) == []


def test_the_seed_image_is_offered_without_pip_or_venv() -> None:
    image = base_images.offered("Canonical", "ubuntu-24_04-lts", "server")
    assert image is not None and image in OFFERED
    for needed in ("openssh-server", "sudo", "python3", "cloud-init", "waagent", "xfsprogs"):
        assert needed in image.packages
    assert not {"python3-venv", "python3-pip"} & set(image.packages)
    assert base_images.offered("Canonical", "ubuntu-22_04-lts", "server") is None


def test_the_cache_key_follows_the_package_list_and_sources() -> None:
    image = OFFERED[0]
    sources = ["deb http://a.example/debian bookworm main"]
    assert image.key(sources) == image.key(list(sources))
    assert image.key(sources) != replace(image, packages=(*image.packages, "vim")).key(sources)
    assert image.key(sources) != image.key(["deb http://b.example/debian bookworm main"])


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(base_images.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def fake_image(tmp_path: Path) -> base_images.BaseImage:
    return replace(OFFERED[0], name="fake", packages=("fake-package",))


def test_a_cached_image_is_used_and_concurrent_makers_build_once(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = fake_image(tmp_path)
    builds: list[int] = []
    started = threading.Event()

    def fake_build(image: object, sources: list[str], final: Path, progress: object) -> None:
        builds.append(1)
        started.set()
        temp = final.with_name(f".{final.name}.tmp")
        (temp / "root" / "etc").mkdir(parents=True)
        (temp / "root" / "etc" / "os-release").write_text("ID=debian\n")
        threading.Event().wait(0.3)  # the other maker waits on the lock meanwhile
        temp.rename(final)

    monkeypatch.setattr(base_images, "_build", fake_build)
    results: list[Path] = []
    makers = [
        threading.Thread(target=lambda: results.append(base_images.ensure(image))) for _ in range(3)
    ]
    for maker in makers:
        maker.start()
    for maker in makers:
        maker.join()
    assert len(builds) == 1
    assert len(set(results)) == 1 and (results[0] / "etc" / "os-release").exists()
    assert results[0].parent.parent == cache
    assert base_images.ensure(image) == results[0] and len(builds) == 1


def test_a_failed_build_leaves_no_image_behind(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an mmdebstrap that gets half-way (writes into its target) and fails
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "mmdebstrap"
    fake.write_text(
        "#!/bin/sh\n"
        'for a; do case $a in */root) mkdir -p "$a/etc"; touch "$a/etc/half";; esac; done\n'
        'echo "E: Unable to locate package no-such-package" >&2\nexit 100\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    lines: list[str] = []
    with pytest.raises(RuntimeError, match=r"mmdebstrap failed.*no-such-package"):
        base_images.ensure(fake_image(tmp_path), progress=lines.append)
    assert lines and "making the base image" in lines[0]
    assert not [p for p in cache.iterdir() if p.is_dir()], "a half-made tree was left"


def test_down_purge_removes_the_cache_but_down_keeps_it(cache: Path, tmp_path: Path) -> None:
    kept = cache / "fake-0123" / "root"
    kept.mkdir(parents=True)
    env = {
        **os.environ,
        base_images.CACHE_ENV: str(cache),
        "LOCALCLOUD_REGISTRY": str(tmp_path / "registry"),
    }
    state = ["--state-dir", str(tmp_path / "state")]
    down = [sys.executable, "-m", "localcloud", "down", *state]
    subprocess.run(down, env=env, check=True, capture_output=True, timeout=120)
    assert kept.is_dir()
    purged = subprocess.run(
        [*down, "--purge"], env=env, check=True, capture_output=True, text=True, timeout=120
    )
    assert "removing the cached base images" in purged.stdout
    assert not cache.exists()


def test_a_build_that_times_out_or_was_killed_earlier_leaves_no_temporary_tree(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "mmdebstrap"  # writes into its target, then hangs
    fake.write_text(
        "#!/bin/sh\n"
        'for a; do case $a in */root) mkdir -p "$a/etc"; touch "$a/etc/half";; esac; done\n'
        "exec sleep 30\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(base_images, "BUILD_TIMEOUT_S", 1)
    image = fake_image(tmp_path)
    sources = base_images.configured_sources(image.suite)
    final = cache / f"{image.name}-{image.key(sources)}"
    killed_earlier = final.with_name(f".{final.name}.tmp-99999999")
    (killed_earlier / "root").mkdir(parents=True)
    with pytest.raises(subprocess.TimeoutExpired):
        base_images.ensure(image, progress=lambda line: None)
    assert not [p for p in cache.iterdir() if p.is_dir()], "a temporary tree was left"
