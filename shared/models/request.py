"""The build request: one JSON document describing the image a team wants, validated whole.

Every model forbids unknown fields and is frozen; field descriptions are the API documentation.
Rules that involve several fields live in model validators and report every problem they find,
each at the sub-field a person has to change.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.models import names, packages, paths
from shared.models.fields import (
    AbsolutePath,
    AdminUsername,
    BlobName,
    BlobPrefix,
    BuildName,
    ContainerName,
    EnvironmentYml,
    GalleryDefinition,
    GalleryName,
    GalleryVersion,
    GitRef,
    ImageName,
    ImageVersion,
    KernelName,
    MarketplaceName,
    MountPoint,
    NotebookPattern,
    Owner,
    PackageRequirement,
    Project,
    PythonVersion,
    RepositoryUrl,
    RequirementsTxt,
    TimeOfDay,
    TimeZone,
    VmSize,
)
from shared.models.problems import cross_field_error

MAX_REQUEST_BYTES = 64 * 1024
AZURE_MAX_TAGS = 50
# Tags the controller writes itself (owner, project and its labimage-* markers); user tags get
# what is left of Azure's 50.
CONTROLLER_TAG_BUDGET = 10
MAX_USER_TAGS = AZURE_MAX_TAGS - CONTROLLER_TAG_BUDGET
RESERVED_TAG_PREFIX = "labimage-"
OWNER_TAG = "owner"
PROJECT_TAG = "project"
CONDA_INSTALLERS = ("miniforge", "anaconda")

Installer = Literal["uv", "miniforge", "anaconda"]
SecurityType = Literal["TrustedLaunch", "Standard"]
TRUSTED_LAUNCH: SecurityType = "TrustedLaunch"
STANDARD: SecurityType = "Standard"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MarketplaceImage(_Model):
    """The marketplace image the build VM starts from."""

    publisher: MarketplaceName = Field("Canonical", description="Image publisher.")
    offer: MarketplaceName = Field("ubuntu-24_04-lts", description="Image offer.")
    sku: MarketplaceName = Field(
        "server", description="Image SKU ('server' is the Gen2 Ubuntu Server image)."
    )
    version: ImageVersion = Field(
        "latest",
        description="Image version: 'latest' or an exact version such as '24.04.202409120'.",
    )


class VmSpec(_Model):
    """The build VM (and the relaunched VM, which uses the same size and user)."""

    size: VmSize = Field(
        "Standard_D2s_v5",
        description="Azure VM size, such as 'Standard_D2s_v5'. Whether the region offers it is "
        "checked by Azure when the VM is created.",
    )
    image: MarketplaceImage = Field(
        default_factory=MarketplaceImage,
        description="Marketplace image to start from; the scripts expect Ubuntu "
        "(default: Ubuntu Server 24.04 LTS).",
    )
    spot: bool = Field(
        False,
        description="Use a Spot VM: cheaper, but Azure may evict it (the build then retries "
        "or fails).",
    )
    max_price: float | None = Field(
        None,
        gt=0,
        description="Only with spot: the most to pay per hour in US dollars. Leave out to pay up "
        "to the regular price (never evicted for price).",
    )
    admin_username: AdminUsername = Field(
        "azureuser",
        description="Linux admin user: 1-32 characters, lowercase letter first, then lowercase "
        "letters, digits, '_' or '-'; names Azure reserves (root, admin, ...) are refused. Its "
        "home folder is removed when the image is captured, so nothing is installed there.",
    )
    os_disk_size_gb: int | None = Field(
        None,
        ge=30,
        le=4095,
        description="OS disk size in GB (30-4095). Leave out to keep the image's size.",
    )
    security_type: SecurityType | None = Field(
        None,
        description="'TrustedLaunch' (secure boot and vTPM) or 'Standard', for the build VM and "
        "the relaunched one. Leave out for TrustedLaunch when image.gallery is set and Standard "
        "otherwise: Azure cannot capture a managed image from a Trusted Launch VM, so "
        "TrustedLaunch needs image.gallery (and then no managed image is made).",
    )

    @model_validator(mode="after")
    def _price_needs_spot(self) -> VmSpec:
        if self.max_price is not None and not self.spot:
            raise cross_field_error([("max_price", "max_price applies only when spot is true")])
        return self


class DataDisk(_Model):
    """The data disk: created empty, partitioned, formatted and mounted by UUID with nofail."""

    size_gb: int = Field(256, ge=1, le=32767, description="Size in GB (1-32767).")
    lun: int = Field(0, ge=0, le=63, description="Logical unit number the disk is attached at.")
    mount_point: MountPoint = Field(
        "/datadrive",
        description="Where the disk is mounted: an absolute path, not '/' and not inside a "
        "system folder (/etc, /usr, /opt, /home, /mnt, /var, ...).",
    )
    filesystem: Literal["xfs", "ext4"] = Field("xfs", description="File system to create.")


class JupyterOptions(_Model):
    """What Jupyter to install (Jupyter itself, ipykernel and nbclient are always installed)."""

    lab: bool = Field(True, description="Install JupyterLab; false installs the classic Notebook.")


class PythonEnvironment(_Model):
    """Python, Jupyter and the team's libraries, installed under /opt."""

    installer: Installer = Field(
        "uv",
        description="How Python is installed: 'uv' (a virtual environment) or 'miniforge' (a "
        "conda environment from conda-forge). 'anaconda' is refused with a reason.",
    )
    version: PythonVersion = Field(
        "3.11", description="Python version, 3.9 to 3.13, as '3.11' or '3.11.9'."
    )
    packages: list[PackageRequirement] = Field(
        default_factory=list,
        max_length=packages.MAX_PACKAGES,
        description="Libraries as PEP 508 requirements, such as 'numpy>=1.26' or "
        "'xarray[io]>=2024.1'. No URLs, direct references ('name @ url') or pip options. Use "
        "packages, requirements_txt or environment_yml, not several.",
    )
    requirements_txt: RequirementsTxt | None = Field(
        None,
        description="Instead of packages: the text of a requirements.txt (at most 16 KiB). One "
        "requirement per line; comments and blank lines are fine; options such as -e, -r or "
        "--index-url are not.",
    )
    environment_yml: EnvironmentYml | None = Field(
        None,
        description="Instead of packages, with a conda installer only: the text of an "
        "environment.yml (at most 16 KiB) with name, channels (names, not URLs) and "
        "dependencies (conda specs and an optional 'pip:' list). Do not list python; "
        "python.version chooses it.",
    )
    jupyter: JupyterOptions = Field(
        default_factory=JupyterOptions, description="Which Jupyter front end to install."
    )

    @model_validator(mode="after")
    def _one_package_source(self) -> PythonEnvironment:
        problems: list[tuple[str, str]] = []
        given = [
            name
            for name, value in (
                ("packages", self.packages),
                ("requirements_txt", self.requirements_txt),
                ("environment_yml", self.environment_yml),
            )
            if value
        ]
        if len(given) > 1:
            problems.append(
                (given[1], f"give the libraries one way only; {' and '.join(given)} were both set")
            )
        if self.environment_yml is not None and self.installer not in CONDA_INSTALLERS:
            problems.append(
                (
                    "environment_yml",
                    "environment_yml needs installer 'miniforge'; with 'uv' "
                    "use packages or requirements_txt",
                )
            )
        for name in packages.duplicate_package_names(self.packages):
            problems.append(("packages", f"'{name}' is listed more than once"))
        if self.installer == "anaconda":
            # Refused rather than failing at install: the controller has no installer URL for
            # it, and Anaconda's distribution and default channels carry terms of service that
            # many organisations need a paid licence for. miniforge installs the same conda
            # environments from conda-forge.
            problems.append(
                (
                    "installer",
                    "'anaconda' is not offered: use 'miniforge', which installs the same conda "
                    "environments from conda-forge without Anaconda's licence terms",
                )
            )
        if problems:
            raise cross_field_error(problems)
        return self


class DataSource(_Model):
    """Blobs copied from a container of the team's storage account onto the data disk."""

    container: ContainerName = Field(
        description="Blob container name (3-63 lowercase letters, digits and single hyphens).",
        examples=["ooi-data"],
    )
    prefix: BlobPrefix | None = Field(
        None,
        description="Copy every blob whose name starts with this text; the prefix is cut off, "
        "so 'AT4212/ctd/x.nc' with prefix 'AT4212/' lands at '<destination>/ctd/x.nc'. '' "
        "copies the whole container. Give prefix or blobs.",
        examples=["AT4212/"],
    )
    blobs: list[BlobName] | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description="Copy exactly these blobs; each keeps its full name below the destination "
        "('a/b.nc' lands at '<destination>/a/b.nc'). Give prefix or blobs.",
    )
    destination: AbsolutePath = Field(
        description="Folder to copy into: an absolute path inside the data disk mount point.",
        examples=["/datadrive/data/ooi"],
    )

    @model_validator(mode="after")
    def _prefix_or_blobs(self) -> DataSource:
        if (self.prefix is None) == (self.blobs is None):
            raise cross_field_error(
                [("prefix", "give either prefix (a folder of blobs) or blobs (a list of names)")]
            )
        if self.blobs is not None and len(set(self.blobs)) != len(self.blobs):
            raise cross_field_error([("blobs", "a blob is listed more than once")])
        return self


class Repository(_Model):
    """A git repository cloned at a pinned ref."""

    url: RepositoryUrl = Field(
        description="https:// clone URL without credentials, query or fragment.",
        examples=["https://github.com/org/notebooks.git"],
    )
    ref: GitRef = Field(
        description="Branch, tag or full commit id to check out; a tag or commit makes the "
        "image reproducible.",
        examples=["v1.0"],
    )
    destination: AbsolutePath = Field(
        description="Folder to clone into: inside the data disk mount point or below /opt "
        "(but not in /opt/labimage, where the controller installs Python).",
        examples=["/datadrive/notebooks"],
    )


class NotebookCheck(_Model):
    """Notebooks run headless as the check, on the build VM and again on the relaunched VM."""

    run: list[NotebookPattern] = Field(
        default_factory=list,
        max_length=50,
        description="Glob patterns of notebooks to run, ending in '.ipynb'. A relative pattern "
        "is matched inside the first repository's destination; an absolute one must lie inside "
        "the data disk mount point or /opt. '*', '?' and '[...]' match within one folder, '**' "
        "matches any depth. Notebooks run in pattern order, sorted by path within a pattern, "
        "each once; a pattern that matches nothing fails the check (it is usually a typo). "
        "Empty: only check that Jupyter serves and the packages import.",
        examples=[["notebooks/*.ipynb"]],
    )
    timeout_minutes: int = Field(
        20, ge=1, le=240, description="Time limit for each notebook, in minutes (1-240)."
    )
    kernel: KernelName | None = Field(
        None,
        description="Kernel to run the notebooks with; leave out to use the environment's "
        "Python kernel.",
    )


class GalleryTarget(_Model):
    """A Compute Gallery image version published from the captured image."""

    gallery_name: GalleryName = Field(
        description="Compute Gallery name (letters, digits, '.', '_'; no hyphens)."
    )
    definition: GalleryDefinition = Field(description="Image definition inside the gallery.")
    version: GalleryVersion = Field(
        description="Image version to create, as major.minor.patch (for example '1.0.0')."
    )


class ImageTarget(_Model):
    """The image captured from the build VM."""

    name: ImageName = Field(
        description="Managed image name: 1-80 letters, digits, '.', '_' or '-', starting with a "
        "letter or digit and ending with a letter, digit or '_'. A Trusted Launch build (see "
        "vm.security_type) makes no managed image, as Azure cannot; the gallery version is the "
        "image then.",
        examples=["jupyter-ooi-ubuntu2404"],
    )
    gallery: GalleryTarget | None = Field(
        None, description="Also publish the image as a Compute Gallery image version."
    )
    replace: bool = Field(
        False,
        description="Replace an existing managed image of this name that a labimage build "
        "made (as Packer's -force). The new image is captured and verified under a temporary "
        "name first; only then is the old one deleted and the new one captured again under "
        "this name, so a failed rebuild leaves the old image as it was. Never with "
        "image.gallery: a gallery version is not replaced, publish a new version instead.",
    )


class Relaunch(_Model):
    """What happens after capture: a VM started from the new image."""

    verify: bool = Field(
        True, description="Start a VM from the image and run the check again on it."
    )
    keep_running: bool = Field(
        False,
        description="Keep that VM for the team (with auto-stop) instead of deleting it; the "
        "build reports ssh and tunnel commands. If verify and keep_running are both false, "
        "no VM is started from the image.",
    )


class AutoStop(_Model):
    """Evening auto-stop for a VM kept running (the build VMs themselves are never auto-stopped)."""

    enabled: bool = Field(
        True,
        description="Deallocate the kept VM every day at `time`. On by default: a VM kept "
        "running without auto-stop needs enabled set to false explicitly.",
    )
    time: TimeOfDay = Field(
        "19:00",
        description="Local time HH:MM (24-hour). The stop happens at the first auto-stop run "
        "at or after this time (runs are every 15 minutes).",
    )
    time_zone: TimeZone = Field(
        "UTC", description="IANA time zone of `time`, such as 'Europe/Berlin'."
    )


class Reproduce(_Model):
    """Set by POST /api/builds {"from_manifest": ...}: the manifest this build repeats."""

    from_manifest: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="sha256 of the manifest this build repeats."
    )
    data: Literal["exact", "latest"] = Field(
        "exact",
        description="'exact': every blob must still be what the manifest recorded (MD5), or "
        "the rebuild is refused naming the blob; 'latest': take the blobs as they are now.",
    )


class BuildRequest(_Model):
    """POST /api/builds: the image to build, check and capture."""

    name: BuildName = Field(
        description="Short build name: 1-40 lowercase letters, digits and hyphens, starting "
        "with a letter. Shown in listings; resource names come from the build id.",
        examples=["ooi-jupyter"],
    )
    owner: Owner = Field(
        description="Who asked for the build (user name or e-mail); becomes the 'owner' tag.",
        examples=["alice@example.org"],
    )
    project: Project = Field(
        description="Project the cost belongs to; becomes the 'project' tag.",
        examples=["ooi"],
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        json_schema_extra={"maxProperties": MAX_USER_TAGS},
        description=f"Extra Azure tags for every resource, at most {MAX_USER_TAGS}. Names: at "
        "most 512 characters, none of < > % & \\ ? /, not starting with 'labimage-' (the "
        "controller's), microsoft, azure or windows, and not 'owner' or 'project' (use those "
        "fields). Values: at most 256 characters. Azure compares tag names ignoring case.",
    )
    vm: VmSpec = Field(default_factory=VmSpec, description="The build VM.")
    data_disk: DataDisk = Field(
        default_factory=DataDisk, description="The data disk and where it is mounted."
    )
    python: PythonEnvironment = Field(
        default_factory=PythonEnvironment, description="Python, Jupyter and libraries."
    )
    data: list[DataSource] = Field(
        default_factory=list, max_length=50, description="Blob data to copy onto the data disk."
    )
    repositories: list[Repository] = Field(
        default_factory=list, max_length=20, description="Git repositories to clone."
    )
    notebooks: NotebookCheck = Field(
        default_factory=NotebookCheck, description="Notebooks run as the check."
    )
    image: ImageTarget = Field(description="The image to capture.")
    relaunch: Relaunch = Field(
        default_factory=Relaunch, description="The VM started from the image after capture."
    )
    autostop: AutoStop = Field(
        default_factory=AutoStop, description="Auto-stop for a VM kept running."
    )
    reproduce: Reproduce | None = Field(
        None,
        json_schema_extra={"readOnly": True},
        description="Rebuild from a manifest: the packages come from its lock, without "
        'resolution. Set only by the controller from a {"from_manifest": ...} request; a '
        "request that carries it is refused (400).",
    )
    rebuild: Literal["never", "auto"] = Field(
        "never",
        description="'auto': when an earlier succeeded build of the same name (and owner) has "
        "an image whose recorded environment (installer, Python version, packages, "
        "requirements, environment file, Jupyter options, base image, security type, data "
        "disk) is the same as this request's, start from that image, skip the Python install, "
        "refresh data and repositories and verify as usual; otherwise build from the "
        "marketplace image. The build's events say which, and why. 'never' (default): always "
        "from the marketplace image.",
    )

    def resource_tags(self) -> dict[str, str]:
        """The user's tags plus owner and project: what every created resource carries
        (the controller adds its labimage-* tags on top)."""
        return {**self.tags, OWNER_TAG: self.owner, PROJECT_TAG: self.project}

    @field_validator("tags")
    @classmethod
    def _azure_tag_rules(cls, tags: dict[str, str]) -> dict[str, str]:
        problems = [p for name, value in tags.items() for p in _tag_problems(name, value)]
        lowered = [name.lower() for name in tags]
        if len(set(lowered)) != len(lowered):
            problems.append("two tag names differ only in case; Azure treats them as the same")
        if len(tags) > MAX_USER_TAGS:
            problems.append(
                f"{len(tags)} tags given; at most {MAX_USER_TAGS} fit next to the "
                f"{CONTROLLER_TAG_BUDGET} the controller adds (Azure allows 50)"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return tags

    def security_choice(self) -> tuple[SecurityType, str]:
        """The security type the build's VMs are created with, and why."""
        if self.vm.security_type is not None:
            return self.vm.security_type, "asked for in vm.security_type"
        if self.image.gallery is not None:
            return TRUSTED_LAUNCH, (
                "the default for a build that publishes to a Compute Gallery (Azure's default "
                "for Gen2 VMs; the gallery version is made from the VM directly)"
            )
        return STANDARD, (
            "the default for a build that makes a managed image only: Azure cannot capture a "
            "managed image from a Trusted Launch VM"
        )

    @model_validator(mode="after")
    def _paths_fit_together(self) -> BuildRequest:
        problems = _destination_problems(self) + _notebook_problems(self)
        if self.vm.security_type == TRUSTED_LAUNCH and self.image.gallery is None:
            problems.append(
                (
                    "vm.security_type",
                    "Azure cannot capture a managed image from a Trusted Launch VM: add "
                    "image.gallery, or use 'Standard'",
                )
            )
        if self.image.gallery is None and names.nvme_only(self.vm.size):
            problems.append(
                (
                    "vm.size",
                    f"{names.NVME_MANAGED_IMAGE}: add image.gallery (its definition is marked), "
                    "or choose a v5 size",
                )
            )
        if self.image.replace and self.image.gallery is not None:
            problems.append(
                (
                    "image.replace",
                    "gallery versions are never replaced: leave replace out and publish a new "
                    "image.gallery.version",
                )
            )
        if problems:
            raise cross_field_error(problems)
        return self


def _tag_problems(name: str, value: str) -> list[str]:
    found = [p for p in (names.tag_name_problem(name), names.tag_value_problem(name, value)) if p]
    if name.lower().startswith(RESERVED_TAG_PREFIX):
        found.append(f"tag names starting with '{RESERVED_TAG_PREFIX}' are the controller's")
    if name.lower() in (OWNER_TAG, PROJECT_TAG):
        found.append(f"set the '{name.lower()}' tag with the top-level '{name.lower()}' field")
    return found


def _destination_problems(request: BuildRequest) -> list[tuple[str, str]]:
    mount = request.data_disk.mount_point
    problems: list[tuple[str, str]] = []
    claimed: list[tuple[str, str]] = []  # (path, field) of every destination seen so far
    for i, source in enumerate(request.data):
        field = f"data[{i}].destination"
        if not paths.is_within(source.destination, mount):
            problems.append(
                (field, f"'{source.destination}' is not inside the data disk mount point {mount}")
            )
        claimed.append((source.destination, field))
    for i, repo in enumerate(request.repositories):
        field = f"repositories[{i}].destination"
        dest = repo.destination
        if dest == paths.OPT_ROOT:
            problems.append((field, "use a folder below /opt, such as /opt/notebooks, not /opt"))
        elif paths.is_within(dest, paths.INSTALL_ROOT):
            problems.append(
                (field, f"{paths.INSTALL_ROOT} is where the controller installs Python")
            )
        elif not (paths.is_within(dest, mount) or dest.startswith(paths.OPT_ROOT + "/")):
            problems.append(
                (field, f"'{dest}' must be inside the data disk mount point {mount} or below /opt")
            )
        claimed.append((dest, field))
    for j, (path, field) in enumerate(claimed):
        for other_path, other_field in claimed[:j]:
            if paths.is_within(path, other_path) or paths.is_within(other_path, path):
                same = "is the same folder as" if path == other_path else "overlaps"
                problems.append((field, f"'{path}' {same} {other_field} ('{other_path}')"))
    return problems


def _notebook_problems(request: BuildRequest) -> list[tuple[str, str]]:
    mount = request.data_disk.mount_point
    problems: list[tuple[str, str]] = []
    for i, pattern in enumerate(request.notebooks.run):
        field = f"notebooks.run[{i}]"
        if not pattern.startswith("/"):
            if not request.repositories:
                problems.append(
                    (field, "a relative pattern needs a repository to be relative to; "
                     "add one to repositories or write an absolute pattern")
                )  # fmt: skip
        elif not (paths.is_within(pattern, mount) or pattern.startswith(paths.OPT_ROOT + "/")):
            problems.append(
                (field, f"an absolute pattern must be inside the data disk mount point {mount} "
                 "or below /opt")
            )  # fmt: skip
    return problems
