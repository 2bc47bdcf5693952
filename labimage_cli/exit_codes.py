"""What the labimage command's exit status means; the same table is in --help and the README."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    OTHER_ERROR = 1  # not found, conflict, a refused key, a server error, an interrupted watch
    INVALID_INPUT = 2  # the request failed local validation, or the API answered 400 or 413
    BUILD_FAILED = 3  # the build ended failed or cancelled
    API_UNREACHABLE = 4  # connection refused, timed out, or the host name did not resolve


EXIT_CODES_HELP = """\
exit codes:
  0  success (for watch/status/submit --wait: the build succeeded or is still going)
  1  other errors (unknown build, conflict, refused function key, server error)
  2  invalid input: the request failed local validation, or the API answered 400/413
  3  the build failed or was cancelled
  4  the API is unreachable (connection refused, timeout, name not resolved)
"""
