"""Reading a kept VM's activity over SSH: Jupyter's own record and a CPU sample.

One remote command runs a short Python program on the guest (as root, to see every user's
Jupyter runtime files). It asks each running Jupyter server, on the guest's loopback with the
token from its own runtime file, for /api/status and /api/kernels, and samples /proc/stat over
two seconds. Tokens never leave the guest: only the activity figures come back.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from shared.costguard.idle import Activity, KernelActivity
from shared.ssh.quoting import RemoteCommand
from shared.ssh.runner import SshRunner

PROBE = r"""
import glob, json, time, urllib.request
def cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + (v[4] if len(v) > 4 else 0)
t0, i0 = cpu(); time.sleep(2); t1, i1 = cpu()
out = {"cpu_percent": 100.0 * (1 - (i1 - i0) / max(1, t1 - t0)), "servers": []}
files = glob.glob("/home/*/.local/share/jupyter/runtime/jpserver-*.json")
files += glob.glob("/root/.local/share/jupyter/runtime/jpserver-*.json")
for path in files:
    try:
        info = json.load(open(path))
        base = "http://127.0.0.1:%d%s" % (info["port"], info.get("base_url", "/"))
        head = {"Authorization": "token " + info.get("token", "")}
        def get(p):
            r = urllib.request.Request(base + p, headers=head)
            return json.load(urllib.request.urlopen(r, timeout=5))
        # no_track_activity: else asking for the kernels counts as API activity and every
        # probe would restart the idle clock it reads (api/status is not counted anyway).
        status = get("api/status")
        out["servers"].append({"status": status, "kernels": get("api/kernels?no_track_activity=1")})
    except Exception:
        continue
print(json.dumps(out))
"""

PROBE_COMMAND = RemoteCommand(("python3", "-c", PROBE), 30, sudo=True)


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_probe(output: str) -> Activity:
    """The probe's JSON as an Activity (several Jupyter servers are merged)."""
    data = json.loads(output)
    servers = data.get("servers") or []
    kernels: list[KernelActivity] = []
    marks: list[datetime] = []
    connections = 0
    for server in servers:
        status = server.get("status") or {}
        mark = _instant(status.get("last_activity"))
        if mark:
            marks.append(mark)
        connections += int(status.get("connections") or 0)
        for kernel in server.get("kernels") or []:
            kernels.append(
                KernelActivity(
                    execution_state=str(kernel.get("execution_state", "unknown")),
                    last_activity=_instant(kernel.get("last_activity")),
                    connections=int(kernel.get("connections") or 0),
                )
            )
    return Activity(
        jupyter_running=bool(servers),
        last_activity=max(marks) if marks else None,
        connections=connections,
        kernels=kernels,
        cpu_percent=float(data.get("cpu_percent") or 0.0),
    )


async def probe_activity(runner: SshRunner) -> Activity:
    """Run the probe on the guest; RemoteCommandError / SshConnectionError propagate."""
    result = await runner.check(PROBE_COMMAND)
    return parse_probe(result.stdout)
