"""Which data containers a request may name: the deployment's allow-list, never its own.

The controller signs a read SAS for every container a request names and the VM copies the
data into the image. So a request must not reach beyond what the deployment meant to share:
the data account is configured on its own (it never defaults to the controller's storage), a
container must match `LABIMAGE_DATA_CONTAINERS`, and containers the platform keeps for itself
(the Functions host's keys and leases, deployment packages, static sites, logs) are refused
even when a pattern would match them.
"""

from __future__ import annotations

import fnmatch

from shared.models.problems import Problem
from shared.models.request import BuildRequest
from shared.settings import Settings

# Containers Azure Functions, App Service and Storage use for themselves.
RESERVED_CONTAINERS = (
    "azure-webjobs-*",  # host keys (azure-webjobs-secrets), leases, timers
    "app-package-*",  # Flex Consumption deployment packages
    "function-releases*",
    "scm-*",
    "$*",  # $web, $logs, $root
    "insights-*",  # diagnostic exports
)


def data_problems(request: BuildRequest, settings: Settings) -> list[Problem]:
    """Problems with the containers `request` names under this deployment's settings."""
    problems = []
    for index, source in enumerate(request.data or []):
        field = f"data[{index}].container"
        container = source.container
        if settings.data_storage_connection is None:
            problems.append(
                Problem(
                    field=field,
                    message="this labimage has no data storage account configured "
                    "(LABIMAGE_DATA_STORAGE), so no data can be pulled; ask its operator",
                )
            )
        elif _matches(container, RESERVED_CONTAINERS):
            problems.append(
                Problem(
                    field=field,
                    message=f"container {container!r} belongs to the platform, not to data",
                )
            )
        elif not _matches(container, settings.data_containers):
            allowed = ", ".join(settings.data_containers) or "none"
            problems.append(
                Problem(
                    field=field,
                    message=f"container {container!r} is not one this labimage may read "
                    f"(LABIMAGE_DATA_CONTAINERS allows: {allowed})",
                )
            )
    return problems


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in patterns)
