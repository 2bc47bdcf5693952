"""The deployment template parses, and names only role definitions we looked up.

No Bicep compiler is installable from a package registry here (the `bicep` CLI is a .NET
binary downloaded at install time), so the files are parsed with pycep-parser, a Python Bicep
grammar: it catches syntax errors, not type errors.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BICEP_FILES = sorted((ROOT / "infra").rglob("*.bicep"))
# Built-in role definition ids (Azure built-in roles reference), and what the controller uses
# them for. Any other GUID in a role assignment is a mistake.
BUILT_IN_ROLES = {
    "9980e02c-c2be-4d73-94e8-173b1dc7cf3c": "Virtual Machine Contributor",
    "4d97b98b-1d4f-4787-a291-c67834d212e7": "Network Contributor",
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": "Reader",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": "Storage Blob Data Reader",
    "db58b8e5-c6ad-4a2a-8342-4190687cbf4a": "Storage Blob Delegator",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
}
GUID = re.compile(r"'([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})'")


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_bicep_file_parses(path: Path) -> None:
    from pycep import BicepParser

    parsed = BicepParser().parse(file_path=path)
    assert parsed.get("resources") or parsed.get("modules")


def test_every_module_path_exists() -> None:
    for path in BICEP_FILES:
        for module in re.findall(r"^module \w+ '([^']+\.bicep)'", path.read_text(), re.M):
            assert (path.parent / module).exists(), f"{path}: module {module} is missing"


def test_role_ids_are_the_built_in_ones_we_use() -> None:
    found = {g for path in BICEP_FILES for g in GUID.findall(path.read_text())}
    assert found == set(BUILT_IN_ROLES), found ^ set(BUILT_IN_ROLES)


def test_the_function_app_is_python_311_on_flex_consumption() -> None:
    text = (ROOT / "infra" / "modules" / "functionapp.bicep").read_text()
    assert "tier: 'FlexConsumption'" in text and "name: 'FC1'" in text
    assert re.search(r"runtime: \{\s*name: 'python'\s*version: '3.11'", text)
    assert "type: 'UserAssignedIdentity'" in text


def test_azd_deploys_the_repository_as_a_python_function_app() -> None:
    spec = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert spec["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    assert spec["services"]["api"] == {"project": ".", "language": "python", "host": "function"}


def test_app_service_authentication_guards_the_user_routes_and_leaves_the_automation_ones() -> None:
    """The Bicep deploys infra/authsettings.json as authsettingsV2, and localcloud's host
    applies the same file (README: who may do what)."""
    import json

    from pycep import BicepParser

    settings = json.loads((ROOT / "infra" / "authsettings.json").read_text())
    validation = settings["globalValidation"]
    assert settings["platform"]["enabled"] is True
    assert validation["requireAuthentication"] is True
    assert validation["unauthenticatedClientAction"] == "Return401"
    assert set(validation["excludedPaths"]) == {"/api/openapi.json", "/api/automation/*"}
    path = ROOT / "infra" / "modules" / "functionapp.bicep"
    text = path.read_text()
    assert BicepParser().parse(file_path=path)["resources"]
    assert "name: 'authsettingsV2'" in text
    assert "loadJsonContent('../authsettings.json')" in text
    assert "azureActiveDirectory" in text and "allowedAudiences" in text
