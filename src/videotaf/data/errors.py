"""Error types of the data layer: every message names the file (and line) and what was wrong."""

from __future__ import annotations


class DataError(Exception):
    """Base class of every data-layer error."""


class AnnotationError(DataError):
    """An annotation file (labels, split list, file list) is missing or has a bad line.

    ``problems`` holds one message per bad line (``"<file>:<line>: <what>"``).
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [message])


class BadSampleError(DataError):
    """One sample cannot be loaded: missing/unreadable/truncated video, missing frames, ..."""
