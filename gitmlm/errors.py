"""The one user-facing error type, and the edge that turns it into an exit code."""

from __future__ import annotations


class MlmError(Exception):
    """An expected failure: shown to the user as one line, exit code 1 (or `code`)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code
