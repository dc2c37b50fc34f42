"""Statistical warnings: a named warning class, also collected into the result's `warnings` list."""

from __future__ import annotations

import warnings as _warnings


class AnalysisWarning(UserWarning):
    """Something about the data limits what an estimate means (few events, one-arm strata, ...)."""


class WarningLog:
    """Collects plain-language warnings for the report and emits each as an `AnalysisWarning`."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def warn(self, message: str) -> None:
        if message in self.messages:
            return
        self.messages.append(message)
        _warnings.warn(message, AnalysisWarning, stacklevel=2)
