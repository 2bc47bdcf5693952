"""Parsing and building ARM resource ids (case-insensitive, as ARM treats them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceRef:
    """One resource: `/subscriptions/S/resourceGroups/G/providers/NS/t1/n1[/t2/n2...]`."""

    subscription: str
    group: str
    namespace: str
    types: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.names[-1]

    @property
    def type_name(self) -> str:
        """Full type, e.g. `Microsoft.Compute/galleries/images`."""
        return "/".join((self.namespace, *self.types))

    @property
    def id(self) -> str:
        tail = "/".join(f"{t}/{n}" for t, n in zip(self.types, self.names, strict=True))
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.group}"
            f"/providers/{self.namespace}/{tail}"
        )

    @property
    def key(self) -> str:
        return self.id.lower()

    def parent(self) -> ResourceRef:
        return ResourceRef(
            self.subscription, self.group, self.namespace, self.types[:-1], self.names[:-1]
        )

    def child(self, type_segment: str, name: str) -> ResourceRef:
        return ResourceRef(
            self.subscription,
            self.group,
            self.namespace,
            (*self.types, type_segment),
            (*self.names, name),
        )


def group_id(subscription: str, group: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{group}"


def parse_id(resource_id: str) -> ResourceRef | None:
    """Parse a full resource id; None when it is not one."""
    parts = [p for p in resource_id.split("/") if p]
    if len(parts) < 8 or len(parts) % 2 != 0:
        return None
    if parts[0].lower() != "subscriptions" or parts[2].lower() != "resourcegroups":
        return None
    if parts[4].lower() != "providers":
        return None
    rest = parts[6:]
    return ResourceRef(parts[1], parts[3], parts[5], tuple(rest[0::2]), tuple(rest[1::2]))
