"""A clock the test moves, for the server's rules that depend on time: it is injected as
`Core.clock`, and stands in for time.time() and time.monotonic() in modules that read the time
themselves (set_clock)."""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any

import pytest


class Clock:
    """The server's time: the real time plus what the test moved it by, or frozen (`freeze`) for
    rules that compare to the second. Moving it moves both the wall clock (epoch seconds) and the
    monotonic clock (the server's caches and rate limits)."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._frozen: tuple[float, float] | None = None  # (wall, monotonic) when frozen

    def time(self) -> float:
        return (self._frozen[0] if self._frozen else time.time()) + self.offset

    def monotonic(self) -> float:
        return (self._frozen[1] if self._frozen else time.monotonic()) + self.offset

    def __call__(self) -> int:
        return int(self.time())

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def freeze(self) -> None:
        """Stop the clock at the current whole second."""
        self._frozen = (int(self.time()) - self.offset, time.monotonic())


class _TimeModule:
    """The `time` module as seen by a module whose clocks the test clock replaces."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def time(self) -> float:
        return self._clock.time()

    def monotonic(self) -> float:
        return self._clock.monotonic()

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def set_clock(monkeypatch: pytest.MonkeyPatch, clock: Clock, modules: tuple[ModuleType, ...]) -> None:
    """Make `modules` read `clock` where they call time.time() or time.monotonic() (undone with the
    monkeypatch)."""
    for module in modules:
        monkeypatch.setattr(module, "time", _TimeModule(clock))
