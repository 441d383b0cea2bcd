"""Error types shared by every command: they decide the exit code and the one-line message."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or usage: exit code 2, one clear message, no traceback."""

    exit_code = 2


class RuntimeFailure(Exception):
    """The input was fine but the work failed: exit code 1."""

    exit_code = 1
