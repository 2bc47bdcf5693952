"""The deployment template parses, its roles come from infra/roles.json (the file localcloud's
emulator enforces), and that file names only role definitions we looked up.

No Bicep compiler is installable from a package registry here (the `bicep` CLI is a .NET
binary downloaded at install time), so the files are parsed with pycep-parser, a Python Bicep
grammar: it catches syntax errors, not type errors.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcloud.arm.authz import Authorization

ROOT = Path(__file__).resolve().parents[2]
BICEP_FILES = sorted((ROOT / "infra").rglob("*.bicep"))
ROLES = json.loads((ROOT / "infra" / "roles.json").read_text())
# Built-in role definition ids (Azure built-in roles reference), and their names. Any other
# GUID in the role file is a mistake.
BUILT_IN_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Role Based Access Control Administrator",
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


def test_role_ids_are_the_built_in_ones_we_looked_up() -> None:
    found = {role["id"]: role["roleName"] for role in ROLES["builtInRoles"].values()}
    assert found == BUILT_IN_ROLES
    for role in ROLES["builtInRoles"].values():
        assert role["source"].startswith("learn.microsoft.com/"), role["roleName"]


def test_bicep_names_no_role_guid_and_loads_the_role_file() -> None:
    for path in BICEP_FILES:
        text = path.read_text()
        assert not GUID.findall(text), f"{path}: role ids belong in infra/roles.json"
        for loaded in re.findall(r"loadJsonContent\('([^']+)'\)", text):
            # The role file, or App Service authentication's settings (which localcloud reads too).
            assert (path.parent / loaded).resolve() in {
                ROOT / "infra" / "roles.json",
                ROOT / "infra" / "authsettings.json",
            }, path


def _bicep_text() -> str:
    return "\n".join(path.read_text() for path in BICEP_FILES)


def test_every_assignment_kind_and_custom_role_is_deployed_and_nothing_else() -> None:
    text = _bicep_text()
    used_kinds = set(re.findall(r"roles\.assignments\.(\w+)\.", text))
    assert used_kinds == set(ROLES["assignments"])
    used_custom = set(re.findall(r"roles\.customRoles\.(\w+)", text))
    assert used_custom == set(ROLES["customRoles"])
    for kind, entry in ROLES["assignments"].items():
        for name in entry["builtIn"]:
            assert name in ROLES["builtInRoles"], (kind, name)
        for name in entry["custom"]:
            assert name in ROLES["customRoles"], (kind, name)
            # A custom role is assigned by the module of its scope kind, with its id passed in.
            assert f"{name}RoleId" in text, (kind, name)


def _holder(role_names: list[str]) -> Authorization:
    """One principal holding `role_names` (from the role file) at subscription scope."""
    roles = ROLES["builtInRoles"] | ROLES["customRoles"]
    return Authorization.from_json(
        {
            "roleDefinitions": [
                {"id": name, "permissions": [roles[name]]} for name in set(role_names)
            ],
            "principals": [{"principalId": "p"}],
            "roleAssignments": [
                {"principalId": "p", "roleDefinitionId": name, "scope": "/subscriptions/s"}
                for name in role_names
            ],
        }
    )


@pytest.mark.parametrize("choice", ROLES["deployer"]["choices"], ids=" + ".join)
def test_each_documented_deployer_role_set_may_deploy_the_template(choice: list[str]) -> None:
    holder = _holder(choice)
    for action in ROLES["deployer"]["needs"]:
        assert holder.allows("p", action, "/subscriptions/s"), (choice, action)
    names = [ROLES["builtInRoles"][n]["roleName"] for n in choice]
    assert " + ".join(names) in (ROOT / "docs" / "deploy.md").read_text()


@pytest.mark.parametrize("choice", ROLES["deployer"]["notEnough"], ids=" + ".join)
def test_contributor_and_rbac_administrator_cannot_write_role_definitions(
    choice: list[str],
) -> None:
    """Contributor's NotActions drop Microsoft.Authorization/*/Write, and RBAC Administrator
    writes role assignments only: the template's custom roles would be refused."""
    holder = _holder(choice)
    assert not holder.allows(
        "p", "Microsoft.Authorization/roleDefinitions/write", "/subscriptions/s"
    )
    names = [ROLES["builtInRoles"][n]["roleName"] for n in choice]
    doc = (ROOT / "docs" / "deploy.md").read_text()
    assert f"{names[0]} + {names[1]} is not enough" in doc


def test_the_controller_roles_cover_every_call_it_makes_in_the_build_group() -> None:
    """What each stage needs (RULES.md 2.1) is granted on the build group."""
    entry: dict[str, Any] = ROLES["assignments"]["buildGroup"]
    holder = _holder(entry["builtIn"] + entry["custom"])
    for action in (
        "Microsoft.Compute/virtualMachines/write",
        "Microsoft.Compute/virtualMachines/generalize/action",
        "Microsoft.Compute/virtualMachines/deallocate/action",
        "Microsoft.Compute/disks/delete",
        "Microsoft.Network/networkInterfaces/join/action",
        "Microsoft.Network/virtualNetworks/subnets/join/action",
        "Microsoft.Network/publicIPAddresses/write",
        "Microsoft.Compute/images/write",
        "Microsoft.Compute/galleries/images/versions/write",
        "Microsoft.Resources/subscriptions/resourceGroups/resources/read",
    ):
        assert holder.allows("p", action, "/subscriptions/s/resourceGroups/b"), action
    assert not holder.allows("p", "Microsoft.Compute/galleries/delete", "/subscriptions/s")


def test_the_vm_stopper_may_snooze_but_not_change_vms() -> None:
    stopper = _holder(ROLES["assignments"]["autostopGroups"]["custom"])
    scope = "/subscriptions/s/resourceGroups/other/providers/Microsoft.Compute/virtualMachines/v"
    assert stopper.allows("p", "Microsoft.Resources/tags/write", scope)
    assert stopper.allows("p", "Microsoft.Compute/virtualMachines/deallocate/action", scope)
    assert not stopper.allows("p", "Microsoft.Compute/virtualMachines/write", scope)
    assert not stopper.allows("p", "Microsoft.Compute/virtualMachines/delete", scope)


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
    assert set(validation["excludedPaths"]) == {
        "/api/openapi.json",
        "/api/automation/*",
        "/api/links/*",  # the workstations' signed one-click links (they check their own MAC)
    }
    path = ROOT / "infra" / "modules" / "functionapp.bicep"
    text = path.read_text()
    assert BicepParser().parse(file_path=path)["resources"]
    assert "name: 'authsettingsV2'" in text
    assert "loadJsonContent('../authsettings.json')" in text
    assert "azureActiveDirectory" in text and "allowedAudiences" in text
