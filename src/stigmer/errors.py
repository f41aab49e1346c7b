"""The error tree.

Two roots, as the house style asks: a :class:`UserError` is something the person must change
(a flag, a file, a variable); a :class:`RuntimeFailure` is something that went wrong while
running (a server down, a crash). Both carry a message that says what to do next. They are
turned into a CLI message and an exit code only at the CLI edge (``stigmer.cli.main``).
"""

from __future__ import annotations


class StigmerError(Exception):
    """Base of every error stigmer raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  → {self.hint}" if self.hint else self.message


class UserError(StigmerError):
    """Bad input or configuration: the person must change something."""

    exit_code = 2


class ConfigError(UserError):
    """A configuration value, file, flag or variable is invalid."""


class RuntimeFailure(StigmerError):
    """Something failed while running; retrying or fixing the environment may help."""

    exit_code = 1


class DaemonNotRunning(RuntimeFailure):
    """The CLI needs the daemon, and it is not running."""

    def __init__(self, message: str = "the stigmer daemon is not running") -> None:
        super().__init__(message, hint="start it with `stigmer local start`")
