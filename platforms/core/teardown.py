"""Deleting what a run created, written once for endpoints (platforms/core/endpoint.py) and services
(platforms/core/service.py): newest first, with Ctrl-C held off until every delete was tried, "already gone"
counted as deleted, and one failure never stopping the rest; a platform supplies only its delete calls and
its not-found test. And Ctrl-C while something is billed: it must reach the teardown."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional


@contextmanager
def _sigint(handler):
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def sigint_held():
    """Ctrl-C during teardown would leave a billed resource behind: hold it until the deletes are done."""
    return _sigint(signal.SIG_IGN)


def sigint_interrupts():
    """While a resource is billed, Ctrl-C must raise KeyboardInterrupt (and so reach teardown) whatever
    handler a library left installed; asyncio.run, too, only turns Ctrl-C into a cancellation when the
    default handler is in place."""
    return _sigint(signal.default_int_handler)


def first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass
class Deleted:
    done: list[str] = field(default_factory=list)       # "KIND NAME", "KIND NAME (already gone)", or the delete's own lines
    failures: list[str] = field(default_factory=list)   # "KIND NAME: why"


def delete_newest_first(created: list[tuple[str, str]], delete: Callable[[str, str], Optional[Iterable[str]]],
                        already_gone: Callable[[Exception], bool] = lambda exc: False,
                        why: Callable[[Exception], str] = first_line) -> Deleted:
    """Calls `delete(kind, name)` for each created (kind, name), newest first, and empties `created`. A delete
    that returns or yields lines has them recorded as what it deleted (a name may stand for several resources);
    one that returns None is recorded as "KIND NAME". An exception `already_gone` accepts counts as deleted; any other
    is recorded as a failure, and the next delete is tried."""
    out = Deleted()
    with sigint_held():
        for kind, name in reversed(list(created)):
            try:
                lines = delete(kind, name)
                if lines is None:
                    out.done.append(f"{kind} {name}")
                for line in lines or ():  # a generator's lines count as they come: a later failure keeps them
                    out.done.append(line)
            except Exception as exc:  # noqa: BLE001 - every failure is reported, none hides another
                if already_gone(exc):
                    out.done.append(f"{kind} {name} (already gone)")
                else:
                    out.failures.append(f"{kind} {name}: {why(exc)}")
            created.remove((kind, name))
    return out
