"""The settings the code reads, local.settings.sample.json and the Bicep app settings agree.

A setting counts by its root: `AzureWebJobsStorage__accountName` is the identity-based form of
`AzureWebJobsStorage` (the Functions host's convention), so the sample's connection string and
the template's identity-based settings name the same connection.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE_FILES = [ROOT / "shared" / "settings.py", ROOT / "shared" / "telemetry.py"]
FUNCTIONS_APP_SETTINGS = ROOT / "infra" / "modules" / "functionapp.bicep"
# Owned by the platform: Flex Consumption sets the runtime in functionAppConfig, and the sample
# needs it for the local Functions host only.
HOST_ONLY = {"FUNCTIONS_WORKER_RUNTIME"}
# Set by the platform itself (App Service's managed-identity endpoint), never by us.
PLATFORM = {"IDENTITY_HEADER", "IDENTITY_ENDPOINT"}

_READ = re.compile(
    r"""(?:_required|_optional|_number|_patterns|storage_connection|env\.get|environ\.get)\(\s*(?:env,\s*)?"([A-Za-z_][A-Za-z0-9_]*)\"""",
)
_CONSTANT = re.compile(r'^[A-Z_]*SETTING\s*=\s*"([A-Za-z_][A-Za-z0-9_]*)"', re.M)

BINDINGS_SCRIPT = """
import json, function_app
names = set()
for f in function_app.app.get_functions():
    for raw in f.get_raw_bindings():
        b = json.loads(raw)
        if b.get("connection"):
            names.add(b["connection"])
        for value in b.values():
            if isinstance(value, str) and value.startswith("%") and value.endswith("%"):
                names.add(value.strip("%"))
print(json.dumps(sorted(names)))
"""


def root(name: str) -> str:
    return name.split("__", 1)[0]


def code_settings() -> set[str]:
    names: set[str] = set()
    for path in CODE_FILES:
        text = path.read_text()
        names |= set(_READ.findall(text)) | set(_CONSTANT.findall(text))
    return {root(n) for n in names} - PLATFORM


def binding_settings() -> set[str]:
    """Connections and %NAME% values of every function, from a fresh process (get_functions
    may be called once per process)."""
    result = subprocess.run(
        [sys.executable, "-c", BINDINGS_SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return {root(n) for n in json.loads(result.stdout.strip().splitlines()[-1])}


def sample_settings() -> set[str]:
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    return {root(n) for n in values} - HOST_ONLY


def bicep_app_settings(text: str) -> set[str]:
    """Top-level keys of the `properties` object of the `appsettings` config resource."""
    start = text.index("{", text.index("properties:", text.index("name: 'appsettings'")))
    keys: set[str] = set()
    depth = 0
    for line in text[start:].splitlines():
        if depth == 1:
            match = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*:", line)
            if match:
                keys.add(match.group(1))
        depth += line.count("{") + line.count("[") - line.count("}") - line.count("]")
        if depth == 0:
            return keys
    raise AssertionError("the appsettings properties object does not close")


def test_the_code_the_sample_and_the_template_name_the_same_settings() -> None:
    code = code_settings() | binding_settings()
    sample = sample_settings()
    template = {root(n) for n in bicep_app_settings(FUNCTIONS_APP_SETTINGS.read_text())}
    assert code - sample == set(), "read by the code, missing from local.settings.sample.json"
    assert sample - code == set(), "in local.settings.sample.json, never read by the code"
    assert code - template == set(), "read by the code, not set by infra/modules/functionapp.bicep"
    assert template - code == set(), "set by the template, never read by the code"


def test_the_scan_sees_what_it_should() -> None:
    # Guards the scan itself: a regex that found nothing would make the test above vacuous.
    code = code_settings()
    assert {"AzureWebJobsStorage", "LABIMAGE_RESOURCE_GROUP", "AZURE_CLIENT_ID"} <= code
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in code
    assert {"AzureWebJobsStorage", "WATCHDOG_SCHEDULE"} <= binding_settings()
    template = bicep_app_settings(FUNCTIONS_APP_SETTINGS.read_text())
    assert "AzureWebJobsStorage__accountName" in template
    assert "AzureWebJobsStorage" not in template  # identity-based: no connection string
