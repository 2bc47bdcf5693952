"""The API's data: the build request (validated whole), the problems it can have, build status.

Call parse_build_request(body) on a POST /api/builds body; it returns a frozen BuildRequest or
raises RequestTooLarge (413) / RequestInvalid (400), both RequestRejected with to_body().
"""

from shared.models.parse import field_path, parse_build_request, problems_from_validation_error
from shared.models.problems import (
    ErrorBody,
    Problem,
    RequestInvalid,
    RequestRejected,
    RequestTooLarge,
)
from shared.models.request import (
    MAX_REQUEST_BYTES,
    AutoStop,
    BuildRequest,
    DataDisk,
    DataSource,
    GalleryTarget,
    ImageTarget,
    JupyterOptions,
    MarketplaceImage,
    NotebookCheck,
    PythonEnvironment,
    Relaunch,
    Repository,
    VmSpec,
)
from shared.models.status import (
    BuildAccepted,
    BuildEvent,
    BuildList,
    BuildStatus,
    BuildSummary,
    Connection,
    NotebookResult,
    ResourceRef,
    StageRecord,
    VerificationReport,
)

__all__ = [
    "MAX_REQUEST_BYTES",
    "AutoStop",
    "BuildAccepted",
    "BuildEvent",
    "BuildList",
    "BuildRequest",
    "BuildStatus",
    "BuildSummary",
    "Connection",
    "DataDisk",
    "DataSource",
    "ErrorBody",
    "GalleryTarget",
    "ImageTarget",
    "JupyterOptions",
    "MarketplaceImage",
    "NotebookCheck",
    "NotebookResult",
    "Problem",
    "PythonEnvironment",
    "Relaunch",
    "Repository",
    "RequestInvalid",
    "RequestRejected",
    "RequestTooLarge",
    "ResourceRef",
    "StageRecord",
    "VerificationReport",
    "VmSpec",
    "field_path",
    "parse_build_request",
    "problems_from_validation_error",
]
