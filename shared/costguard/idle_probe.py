"""Reading a kept VM's activity over SSH: Jupyter's own record and a CPU sample.

One remote command runs a short Python program on the guest (as root, to see every user's
Jupyter runtime files). It asks each running Jupyter server, on the guest's loopback with the
token from its own runtime file, for /api/status and /api/kernels, and samples /proc/stat over
two seconds. Tokens never leave the guest: only the activity figures come back.
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.costguard.idle import Activity, KernelActivity
from shared.remote.reports import BadGuestReport, parse_guest_json
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


# The guest answered something that is not the probe's report (one VM's problem).
BadProbeOutput = BadGuestReport


class _Status(BaseModel):
    model_config = ConfigDict(extra="ignore")
    last_activity: AwareDatetime | None = None
    connections: int = Field(0, ge=0, le=100_000)


class _Kernel(BaseModel):
    model_config = ConfigDict(extra="ignore")
    execution_state: str = Field("unknown", max_length=40)
    last_activity: AwareDatetime | None = None
    connections: int = Field(0, ge=0, le=100_000)


class _Server(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: _Status = Field(default_factory=_Status)
    kernels: list[_Kernel] = Field(default_factory=list, max_length=1_000)


class _ProbeReport(BaseModel):
    """What the probe prints, bounded: anything else from the guest is refused whole."""

    model_config = ConfigDict(extra="ignore")
    cpu_percent: float = Field(0.0, ge=0.0, le=100.0, allow_inf_nan=False)
    servers: list[_Server] = Field(default_factory=list, max_length=100)


MAX_PROBE_OUTPUT = 1024 * 1024


def parse_probe(output: str) -> Activity:
    """The probe's JSON as an Activity (several Jupyter servers are merged).

    The output comes from the guest, which anyone with the VM controls: BadProbeOutput for
    anything that is not a well-formed, bounded report."""
    report = parse_guest_json(_ProbeReport, output, "probe's report", MAX_PROBE_OUTPUT)
    kernels = [
        KernelActivity(k.execution_state, k.last_activity, k.connections)
        for server in report.servers
        for k in server.kernels
    ]
    marks = [s.status.last_activity for s in report.servers if s.status.last_activity]
    return Activity(
        jupyter_running=bool(report.servers),
        last_activity=max(marks) if marks else None,
        connections=sum(s.status.connections for s in report.servers),
        kernels=kernels,
        cpu_percent=report.cpu_percent,
    )


async def probe_activity(runner: SshRunner) -> Activity:
    """Run the probe on the guest; RemoteCommandError / SshConnectionError propagate."""
    result = await runner.check(PROBE_COMMAND)
    return parse_probe(result.stdout)
