"""Who still uses an image: the one place that answers it, so everything that would remove an
image (DELETE /api/images, later workstations) asks the same question.

Azure itself lets a managed image be deleted while VMs made from it run (their disks are their
own copies), but such a VM can then no longer be reimaged or redeployed from it; so labimage
refuses to delete an image a VM it keeps still names. Extend `image_users` with other kinds of
user (workstations) by adding a finder to `USER_FINDERS`.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.azure.boundary import arm_call
from shared.azure.clients import AzureClients
from shared.azure.naming import BUILD_TAG

UserFinder = Callable[[AzureClients, str], list[str]]


def vms_from_image(azure: AzureClients, image_id: str) -> list[str]:
    """VMs in the build group whose storageProfile.imageReference is `image_id`, described
    as 'VM <name> (build <id>)'."""
    group = azure.settings.resource_group
    wanted = image_id.lower()
    users = []
    with arm_call("list VMs"):
        for vm in azure.compute.virtual_machines.list(group):
            reference = vm.storage_profile.image_reference if vm.storage_profile else None
            if reference is not None and (reference.id or "").lower() == wanted:
                build = (vm.tags or {}).get(BUILD_TAG)
                users.append(f"VM {vm.name}" + (f" (build {build})" if build else ""))
    return sorted(users)


USER_FINDERS: list[UserFinder] = [vms_from_image]


def image_users(azure: AzureClients, image_id: str) -> list[str]:
    """Every user of the image, each named so a person can find it; empty when none."""
    return [user for find in USER_FINDERS for user in find(azure, image_id)]
