"""platforms/core/retry.py: a transient fault is tried again with growing waits, a few times in all; any other
fault, or the last transient one, is raised as the call raised it."""
from __future__ import annotations

import pytest

from platforms.core.retry import TRIES, retried


class Flaky:
    """Raises the given faults in turn, then returns "done"; counts its calls."""

    def __init__(self, *faults: BaseException):
        self.faults, self.calls = list(faults), 0

    def __call__(self) -> str:
        self.calls += 1
        if self.faults:
            raise self.faults.pop(0)
        return "done"


def transient(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionResetError)


def test_transient_faults_are_tried_again_with_growing_waits():
    waits: list[float] = []
    call = Flaky(ConnectionResetError(), ConnectionResetError())
    assert retried(call, transient, sleep=waits.append) == "done"
    assert call.calls == 3 and waits == [0.5, 1.0]


def test_a_fault_that_does_not_pass_is_raised_at_once():
    waits: list[float] = []
    call = Flaky(ValueError("refused"))
    with pytest.raises(ValueError, match="refused"):
        retried(call, transient, sleep=waits.append)
    assert call.calls == 1 and waits == []


def test_a_lasting_fault_gives_up_after_a_few_tries_and_seconds():
    waits: list[float] = []
    call = Flaky(*[ConnectionResetError(f"reset {i}") for i in range(10)])
    with pytest.raises(ConnectionResetError, match=f"reset {TRIES - 1}"):
        retried(call, transient, sleep=waits.append)
    assert call.calls == TRIES and len(waits) == TRIES - 1
    assert sum(waits) <= 10, "a lasting outage must be reported within seconds"


def test_waits_are_capped():
    waits: list[float] = []
    with pytest.raises(ConnectionResetError):
        retried(Flaky(*[ConnectionResetError()] * 8), transient, tries=8, max_wait_s=2.0, sleep=waits.append)
    assert max(waits) == 2.0
