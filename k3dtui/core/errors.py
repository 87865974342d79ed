"""Errors k3dtui reports to a person: one line saying what failed, one saying what to do."""

from __future__ import annotations


class K3dtuiError(Exception):
    """A failure to report without a traceback. ``exit_code`` 1 = operation failed."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(K3dtuiError):
    """Bad input, refused before anything is changed. Exit code 2."""

    exit_code = 2
