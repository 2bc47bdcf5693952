"""Which step runs in which stage, and each stage's time and retry budget."""

from __future__ import annotations

from datetime import timedelta

from shared.state.machine import Stage
from shared.steps.base import Budget, Step
from shared.steps.capture import capture_image
from shared.steps.cleanup import clean_up
from shared.steps.install import install_environment
from shared.steps.mount import mount_data_disk
from shared.steps.provision import provision_vm
from shared.steps.relaunch import relaunch_vm
from shared.steps.verify import verify_jupyter

STEPS: dict[Stage, Step] = {
    Stage.PROVISION: provision_vm,
    Stage.MOUNT: mount_data_disk,
    Stage.INSTALL: install_environment,
    Stage.VERIFY: verify_jupyter,
    Stage.CAPTURE: capture_image,
    Stage.RELAUNCH: relaunch_vm,
    Stage.CLEANUP: clean_up,
}

BUDGETS: dict[Stage, Budget] = {
    Stage.PROVISION: Budget(timedelta(minutes=20)),
    Stage.MOUNT: Budget(timedelta(minutes=20)),
    Stage.INSTALL: Budget(timedelta(minutes=120)),
    Stage.VERIFY: Budget(timedelta(hours=8)),
    Stage.CAPTURE: Budget(timedelta(minutes=90)),
    Stage.RELAUNCH: Budget(timedelta(hours=8)),
    Stage.CLEANUP: Budget(timedelta(minutes=60), max_retries=20),
}
