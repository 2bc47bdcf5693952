"""SIGTERM ends a localcloud user (the demo, a test run) the way Ctrl-C does.

Python's default SIGTERM ends the process at once: no `finally`, no fixture teardown, so the
instance (namespaces, loop devices, mounts, processes) stays up. Turning SIGTERM into
KeyboardInterrupt lets the same clean-up that Ctrl-C runs take it down.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def terminate_like_interrupt() -> None:
    """From now on SIGTERM raises KeyboardInterrupt in the main thread (a no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
