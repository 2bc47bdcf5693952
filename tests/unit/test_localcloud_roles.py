"""The role document `localcloud up` hands the emulator: the Bicep's assignments, placed on this
instance's scopes, for the controller's identity; and a deployer who may make groups."""

from __future__ import annotations

import json

from localcloud.arm.authz import Authorization
from localcloud.instance import CONTROLLER_PRINCIPAL_ID, DEPLOYER_PRINCIPAL_ID, VAULT_RESOURCE_ID
from localcloud.roles import ROLES_FILE, authorization_document

SUB = "/subscriptions/s"
BUILD = f"{SUB}/resourceGroups/builds"
TEAM = f"{SUB}/resourceGroups/team"


def _authz() -> Authorization:
    roles = json.loads(ROLES_FILE.read_text())
    document = authorization_document(roles, "s", "builds", ["builds", "team"], VAULT_RESOURCE_ID)
    return Authorization.from_json(document)


def test_the_controller_gets_the_build_group_roles_there_and_only_the_stopper_elsewhere() -> None:
    authz = _authz()
    vm = "/providers/Microsoft.Compute/virtualMachines/v"
    assert authz.allows(
        CONTROLLER_PRINCIPAL_ID, "Microsoft.Compute/virtualMachines/write", BUILD + vm
    )
    assert authz.allows(CONTROLLER_PRINCIPAL_ID, "Microsoft.Compute/images/write", BUILD + "/x")
    assert not authz.allows(
        CONTROLLER_PRINCIPAL_ID, "Microsoft.Compute/virtualMachines/write", TEAM + vm
    )
    assert authz.allows(
        CONTROLLER_PRINCIPAL_ID, "Microsoft.Compute/virtualMachines/deallocate/action", TEAM + vm
    )
    assert authz.allows(CONTROLLER_PRINCIPAL_ID, "Microsoft.Resources/tags/write", TEAM + vm)
    for scope in (SUB, f"{SUB}/resourceGroups/other"):
        assert not authz.allows(
            CONTROLLER_PRINCIPAL_ID, "Microsoft.Compute/virtualMachines/read", scope
        )


def test_the_controller_may_use_the_vault_and_the_deployer_may_make_groups() -> None:
    authz = _authz()
    secret = f"{VAULT_RESOURCE_ID}/secrets/labimage-b1-client"
    for action in ("setSecret/action", "getSecret/action", "delete", "purge/action"):
        operation = f"Microsoft.KeyVault/vaults/secrets/{action}"
        assert authz.allows(CONTROLLER_PRINCIPAL_ID, operation, secret, data=True)
    group_write = "Microsoft.Resources/subscriptions/resourceGroups/write"
    assert authz.allows(DEPLOYER_PRINCIPAL_ID, group_write, BUILD)
    assert not authz.allows(CONTROLLER_PRINCIPAL_ID, group_write, BUILD)
