"""Guest script rendering, keys and key storage: no request value ever lands in script text."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from shared.remote import load_script, render
from shared.ssh import keys
from shared.ssh.jobs import job_dir

SCRIPTS = Path(render.__file__).parent / "scripts"
HOSTILE = "pkg; $(touch /tmp/labimage-pwned) `id` 'q\"\nx"


@pytest.mark.parametrize("name", sorted(p.name for p in SCRIPTS.glob("*.sh")))
def test_shell_scripts_parse_and_are_strict(name: str) -> None:
    subprocess.run(["bash", "-n", str(SCRIPTS / name)], check=True)
    assert "set -euo pipefail" in load_script(name)


@pytest.mark.parametrize("name", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_python_scripts_compile(name: str) -> None:
    compile(load_script(name), name, "exec")


def test_install_params_carry_packages_and_script_text_is_fixed() -> None:
    run = render.install_python(
        ["numpy", HOSTILE, "scikit-learn==1.5"], requirements="pandas\n", owner="azureuser"
    )
    assert run.args == ("params.json",)
    params = json.loads(run.files["params.json"])
    assert params["packages"] == ["numpy", HOSTILE, "scikit-learn==1.5"]
    assert params["installer"] == "uv" and params["prefix"] == "/opt/labimage"
    assert params["requirements"] == "pandas\n" and params["installer_url"] is None
    assert run.text == load_script("install_python.sh")
    assert HOSTILE not in run.text and "numpy" not in run.text


def test_conda_installers_render_with_their_installer_url() -> None:
    forge = json.loads(render.install_python([], installer="miniforge").files["params.json"])
    assert forge["installer"] == "miniforge"
    assert forge["installer_url"].startswith("https://")
    with pytest.raises(ValueError):
        render.install_python([], installer="anaconda")
    conda = render.install_python(
        [], installer="anaconda", installer_url="https://example.org/a.sh", environment_yml="x: 1"
    )
    params = json.loads(conda.files["params.json"])
    assert params["installer_url"] == "https://example.org/a.sh"
    assert params["environment_yml"] == "x: 1"


def test_sas_url_goes_only_into_the_parameters_file() -> None:
    sas = "https://acct.example/data?sv=2024&sig=SECRET"
    run = render.pull_data(sas, "/data/datasets", prefix="raw/", owner="azureuser")
    assert json.loads(run.files["params.json"])["container_url"] == sas
    assert all("SECRET" not in a for a in (*run.args, *run.interpreter, run.text))
    assert "SECRET" not in repr(run)


def test_arguments_keep_hostile_values_whole() -> None:
    assert render.clone_repo("https://git.example/r.git", HOSTILE, "/data/repo").args[1] == HOSTILE
    assert render.mount_disk(0, "/data").args == ("0", "/data", "xfs")
    with pytest.raises(ValueError):
        render.mount_disk(99, "/data")


def test_notebook_run_uses_the_environment_python() -> None:
    run = render.run_notebooks(["/data/nb"], ["*.ipynb"], 600)
    assert run.interpreter == ("/opt/labimage/env/bin/python",)
    assert json.loads(run.files["params.json"])["timeout_s"] == 600


def test_jupyter_token_travels_in_a_file() -> None:
    run = render.start_jupyter(8889, "tok123")
    assert run.files == {"token": b"tok123"}
    assert "tok123" not in " ".join(run.args)


def test_job_names_are_checked() -> None:
    assert job_dir("install-1") == "/var/lib/labimage/jobs/install-1"
    for bad in ("../etc", "a b", "", "A;b"):
        with pytest.raises(ValueError):
            job_dir(bad)


def test_keypairs_are_ed25519_and_private_keys_stay_out_of_repr() -> None:
    pair = keys.generate_keypair("labimage-b-1")
    assert pair.public_line.startswith("ssh-ed25519 ") and pair.public_line.endswith("labimage-b-1")
    assert "OPENSSH PRIVATE KEY" in pair.private_openssh
    assert "PRIVATE" not in repr(pair)
    assert keys.public_key_of(pair.private_openssh).split()[:2] == pair.public_line.split()[:2]


def test_host_key_cloud_config_is_valid_cloud_init() -> None:
    host = keys.generate_keypair("host")
    text = keys.host_key_cloud_config(host.private_openssh, host.public_line)
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    assert doc["ssh_deletekeys"] is True
    assert doc["ssh_keys"]["ed25519_private"] == host.private_openssh.strip() + "\n"
    assert doc["ssh_keys"]["ed25519_public"] == host.public_line


def test_directory_key_store_round_trips_with_private_modes(tmp_path: Path) -> None:
    store = keys.DirectoryKeyStore(tmp_path / "keys")
    pair = keys.generate_keypair("c")
    store.save("b-1f3a", "client", pair)
    assert store.load("b-1f3a", "client") == pair
    for file in (tmp_path / "keys").iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    store.delete("b-1f3a")
    with pytest.raises(KeyError):
        store.load("b-1f3a", "client")
    with pytest.raises(ValueError):
        store.save("../escape", "client", pair)


def test_a_loose_key_folder_is_tightened_and_a_planted_link_is_not_written_through(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    (folder / "b-1f3a.client.tmp").symlink_to(victim)
    store = keys.DirectoryKeyStore(folder)
    pair = keys.generate_keypair("c")
    store.save("b-1f3a", "client", pair)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert victim.read_text() == "untouched\n"
    assert store.load("b-1f3a", "client") == pair


def test_a_key_folder_that_is_a_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "keys").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RuntimeError, match="not a plain folder"):
        keys.DirectoryKeyStore(tmp_path / "keys").save(
            "b-1f3a", "client", keys.generate_keypair("c")
        )
