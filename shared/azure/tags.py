"""Changing some tags of a resource through the Tags API, leaving the others as they are.

`PATCH {id}/providers/Microsoft.Resources/tags/default` with operation Merge (add or update the
given names) and Delete (remove the given name/value pairs) (learn.microsoft.com/rest/api/
resources/tags/update-at-scope). Azure allows it with `Microsoft.Resources/tags/write` or with
write access to the resource itself (learn.microsoft.com/azure/azure-resource-manager/
management/tag-resources, "Required access"), so a role that may not change a VM (the
auto-stop role) may still tag it; and tags another writer changed in the meantime stay.
"""

from __future__ import annotations

from azure.mgmt.resource.resources.models import Tags, TagsPatchResource

from shared.azure.boundary import arm_call
from shared.azure.clients import AzureClients


def change_tags(
    azure: AzureClients, resource_id: str, before: dict[str, str], after: dict[str, str]
) -> None:
    """Make the resource's tags go from `before` to `after`: merge what is new or changed,
    then delete what `after` dropped (only where it still has the value it had)."""
    scope = resource_id.lstrip("/")  # the SDK puts the scope after a '/' of its own
    changed = {k: v for k, v in after.items() if before.get(k) != v}
    dropped = {k: v for k, v in before.items() if k not in after}
    tags = azure.resources.tags
    with arm_call(f"update tags of {resource_id}"):
        if changed:
            tags.begin_update_at_scope(
                scope, TagsPatchResource(operation="Merge", properties=Tags(tags=changed))
            ).result()
        if dropped:
            tags.begin_update_at_scope(
                scope, TagsPatchResource(operation="Delete", properties=Tags(tags=dropped))
            ).result()
