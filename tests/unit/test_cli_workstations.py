"""`labimage ws ...` against the stub API: what is sent, and the ssh command `ws ssh` runs."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from test_cli_commands import KEY, StubApi, api, run  # noqa: F401

from labimage_cli.exit_codes import ExitCode
from labimage_cli.workstations import ssh_command

CONNECTION = {
    "address": "10.1.2.3",
    "username": "azureuser",
    "known_hosts_line": "10.1.2.3 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH",
    "key": "the private key is wabcdefghi.client in the controller's key folder",
}


def test_create_sends_the_image_choice_and_options_as_the_api_reads_them(
    api: StubApi,  # noqa: F811
) -> None:
    api.on("POST", "/api/automation/workstations:batch", (202, {"accepted": 2}))
    done = run(
        "ws", "create", "--owners", "ada, bo", "--build", "ooi-jupyter", "--autostop", "18:30",
        "--time-zone", "Europe/Berlin", "--monthly-hours", "40", "--data-disk-gb", "512",
        "--api-url", api.url, "--function-key", KEY,
    )  # fmt: skip
    assert done.code == ExitCode.OK, done.err
    sent = json.loads(api.seen[0].body)
    assert sent == {
        "image": {"build": "ooi-jupyter"},
        "autostop": {"time": "18:30", "time_zone": "Europe/Berlin"},
        "monthly_hours": 40.0,
        "data_disk": {"size_gb": 512},
        "owners": ["ada", "bo"],
    }
    assert KEY not in done.out + done.err


def test_actions_go_to_their_routes_and_a_bad_id_is_refused_before_sending(
    api: StubApi,  # noqa: F811
) -> None:
    api.on("POST", "/api/automation/workstations/wabcdefghi/snooze?hours=2", (200, {"id": "w"}))
    api.on("POST", "/api/automation/workstations/wabcdefghi/stop", (202, {"state": "stopped"}))
    base = ("--api-url", api.url, "--function-key", KEY)
    assert run("ws", "snooze", "wabcdefghi", "--hours", "2", *base).code == ExitCode.OK
    assert run("ws", "stop", "wabcdefghi", *base).code == ExitCode.OK
    refused = run("ws", "stop", "../builds/b1", *base)
    assert refused.code == ExitCode.INVALID_INPUT and "not a workstation id" in refused.err
    assert [s.path for s in api.seen] == [
        "/api/automation/workstations/wabcdefghi/snooze?hours=2",
        "/api/automation/workstations/wabcdefghi/stop",
    ]


def test_ssh_pins_the_host_key_tunnels_to_jupyter_and_quotes_the_remote_command(
    api: StubApi,  # noqa: F811
) -> None:
    command = ssh_command(CONNECTION, Path("/k/key"), Path("/k/known"), "0123abcd")
    assert command[:9] == [
        "ssh", "-i", "/k/key", "-o", "StrictHostKeyChecking=yes",
        "-o", "UserKnownHostsFile=/k/known", "-L", "7005:localhost:8889",
    ]  # fmt: skip
    assert command[9] == "azureuser@10.1.2.3"
    assert shlex.split(command[10])[:2] == ["/opt/labimage/env/bin/jupyter", "lab"]
    assert "--IdentityProvider.token=0123abcd" in shlex.split(command[10])

    shown = {"state": "running", "connection": CONNECTION}
    api.on("GET", "/api/automation/workstations/wabcdefghi", (200, shown))
    printed = run("ws", "ssh", "wabcdefghi", "--print", "--api-url", api.url, "--function-key", KEY)
    assert printed.code == ExitCode.OK, printed.err
    assert "StrictHostKeyChecking=yes" in printed.out
    assert "http://localhost:7005/lab?token=" in printed.out
    stopped = {"state": "stopped", "connection": None}
    api.on("GET", "/api/automation/workstations/wzzzzzzzzz", (200, stopped))
    refused = run("ws", "ssh", "wzzzzzzzzz", "--api-url", api.url, "--function-key", KEY)
    assert refused.code == ExitCode.OTHER_ERROR and "is stopped" in refused.err
