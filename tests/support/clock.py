"""A clock the test moves, for the server's rules that depend on time: it is injected as
`Core.clock`, and stands in for time.time() in modules that read the time themselves (set_clock)."""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any

import pytest


class Clock:
    """The server's time in epoch seconds: the real time plus what the test moved it by, or frozen
    (`freeze`) for rules that compare within one second."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.frozen: float | None = None

    def time(self) -> float:
        return self.frozen if self.frozen is not None else time.time() + self.offset

    def __call__(self) -> int:
        return int(self.time())

    def advance(self, seconds: float) -> None:
        if self.frozen is not None:
            self.frozen += seconds
        else:
            self.offset += seconds

    def freeze(self) -> None:
        self.frozen = float(int(self.time()))


class _TimeModule:
    """The `time` module as seen by a module whose time.time() the clock replaces."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def time(self) -> float:
        return self._clock.time()

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def set_clock(monkeypatch: pytest.MonkeyPatch, clock: Clock, modules: tuple[ModuleType, ...]) -> None:
    """Make `modules` read `clock` where they call time.time() (undone with the monkeypatch)."""
    for module in modules:
        monkeypatch.setattr(module, "time", _TimeModule(clock))
