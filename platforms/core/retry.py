"""A bounded retry for job-API calls an SDK does not retry itself (azure-core's POSTs after a reset, every
apolo-sdk job call): the call again after a transient fault, with exponential backoff, a few tries and a few
seconds in all, then the last fault as the call raised it (the caller turns it into its one line)."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")

TRIES = 4            # the first call and three retries
FIRST_WAIT_S = 0.5   # then 1 s, 2 s: 3.5 s of waiting at most, so a lasting outage is reported promptly
MAX_WAIT_S = 4.0


def retried(call: Callable[[], T], transient: Callable[[BaseException], bool], *, tries: int = TRIES,
            first_wait_s: float = FIRST_WAIT_S, max_wait_s: float = MAX_WAIT_S,
            sleep: Callable[[float], None] = time.sleep) -> T:
    """call() until it returns or raises a fault `transient` does not pass, at most `tries` times."""
    for attempt in range(max(tries, 1)):
        try:
            return call()
        except Exception as exc:
            if attempt + 1 >= tries or not transient(exc):
                raise
            sleep(min(max_wait_s, first_wait_s * 2 ** attempt))
    raise AssertionError("unreachable: the last try returns or raises")
