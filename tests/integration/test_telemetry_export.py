"""Telemetry against a local ingestion stub: stage, ARM and SSH spans, logs, and no secrets."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.e2e.ingestion_stub import OFFLINE_SETTINGS, IngestionStub

ROOT = Path(__file__).resolve().parents[2]
IDENTITY_HEADER = "identity-header-value-0123456789"
SAS = "sv=2024-08-04&sr=c&sp=rl&sig=c2VjcmV0c2lnbmF0dXJlMTIzNDU2Nzg5MA%3D%3D"
KEY_BODY = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAB"

SCRIPT = textwrap.dedent(
    f"""
    import asyncio, logging
    from shared import telemetry
    from shared.azure.boundary import arm_call
    from shared.errors import PermanentError

    logging.basicConfig(level=logging.INFO)
    log = logging.getLogger("shared.test")
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\\n{KEY_BODY}\\n-----END OPENSSH PRIVATE KEY-----"
    assert telemetry.configure()
    with telemetry.stage_invocation("bteletest01", "install") as inv:
        inv.build_loaded(2, "labimage-bteletest01-build")
        log.info("pulling https://acct.blob.core.windows.net/data?{SAS}")
        log.warning("a key leaked into a message: %s", key)
        log.info("header {IDENTITY_HEADER}")
        try:
            with arm_call("create VM x"):
                raise RuntimeError("failed for https://x/?{SAS}")
        except RuntimeError:
            pass
        with telemetry.span("ssh true", {{"labimage.ssh.host": "10.0.0.4"}}):
            pass
        inv.outcome = "poll"
    telemetry.build_ended("succeeded")
    telemetry.vm_stopped("autostop", 1.25, 14.0)
    telemetry.flush()
    """
)


def test_spans_metrics_and_logs_arrive_without_secrets() -> None:
    with IngestionStub() as stub:
        env = {
            **os.environ,
            **OFFLINE_SETTINGS,
            "APPLICATIONINSIGHTS_CONNECTION_STRING": stub.connection_string,
            "IDENTITY_HEADER": IDENTITY_HEADER,
            "PYTHONPATH": str(ROOT),
        }
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        envelopes, raw = stub.snapshot()

    spans = {s["name"]: s for s in stub.spans()}
    stage = spans["stage install"]
    props = stage["properties"]
    assert props["labimage.build_id"] == "bteletest01"
    assert props["labimage.stage"] == "install"
    assert props["labimage.attempt"] == "2"
    assert props["labimage.vm_name"] == "labimage-bteletest01-build"
    assert props["labimage.outcome"] == "poll"
    assert "arm create VM x" in spans
    assert spans["arm create VM x"]["success"] is False
    assert "RuntimeError" in spans["arm create VM x"]["properties"]["labimage.error"]
    assert "ssh true" in spans

    logs = [e["data"]["baseData"] for e in envelopes if e["data"]["baseType"] == "MessageData"]
    ours = [m for m in logs if m.get("properties", {}).get("labimage.build_id") == "bteletest01"]
    assert len(ours) >= 3, logs
    metrics = {
        m["name"]
        for e in envelopes
        if e["data"]["baseType"] == "MetricData"
        for m in e["data"]["baseData"]["metrics"]
    }
    assert {
        "labimage.builds",
        "labimage.vms.stopped",
        "labimage.saving.estimated",
        "labimage.hours.saved",
    } <= metrics

    assert "c2VjcmV0c2lnbmF0dXJl" not in raw
    assert KEY_BODY not in raw and "PRIVATE KEY-----" not in raw
    assert IDENTITY_HEADER not in raw
    assert "sig=REDACTED" in raw  # the message itself still arrived, without the signature
