"""A budget held over something billed by the hour while this process works with it (a deployed endpoint:
platforms/bench/endpoint.py `deployed`): spend so far = USD/h × the seconds since it began billing. Shortly
before that would reach the budget, the watch interrupts the main thread as Ctrl-C does — a real SIGINT, so a
sleep, a socket read or an event loop wakes at once — and the caller's Ctrl-C path (core/teardown.py
sigint_interrupts, then its teardown) stops it; `fired` tells that interrupt from a user's Ctrl-C.

The watch does not poll: the price is fixed, so the moment the spend reaches the budget is known when it is
armed, and one timed wait ends `margin_s` before it (the interrupt reaching the main thread, then the deletes:
billing ends with them)."""
from __future__ import annotations

import signal
import threading
import time
from typing import Optional

from platforms.errors import UserError

MARGIN_S = 2.0  # the interrupt reaching the main thread; a caller adds its deletes' seconds (cost_plan.endpoint_margin)
RESEND_S = 1.0  # the interrupt sent again, until the caller has it (see _watch)


class SpendWatch:
    def __init__(self, usd_per_hour: float, max_usd: float, margin_s: float = MARGIN_S):
        self.usd_per_hour, self.max_usd, self.margin_s = usd_per_hour, max_usd, margin_s
        self.started: Optional[float] = None    # time.monotonic() when billing began (arm)
        self.fired_at: Optional[float] = None   # when the watch interrupted the main thread
        self.ended: Optional[float] = None      # when billing ended (end): the spend stops growing there
        self._lock = threading.Lock()           # held while firing: once disarmed, no interrupt is sent
        self._armed = False
        self._done = threading.Event()

    @property
    def fired(self) -> bool:
        return self.fired_at is not None

    @property
    def seconds(self) -> float:
        """Seconds billed so far (until `end`, once called)."""
        if self.started is None:
            return 0.0
        return (self.ended if self.ended is not None else time.monotonic()) - self.started

    @property
    def spent_usd(self) -> float:
        return self.usd_per_hour * self.seconds / 3600

    @property
    def stop_after_s(self) -> float:
        """Seconds after arming at which the watch interrupts: the budget's seconds less the margin."""
        return max(0.0, self.max_usd / self.usd_per_hour * 3600 - self.margin_s) if self.usd_per_hour > 0 else float("inf")

    def arm(self) -> None:
        """Billing begins now; the watch starts."""
        if threading.current_thread() is not threading.main_thread():  # only the main thread gets SIGINT's handler
            raise UserError("--max-usd: a budget is held only from the main thread (its stop interrupts it as "
                            "Ctrl-C does)")
        self.started, self._armed = time.monotonic(), True
        if self.stop_after_s != float("inf"):
            threading.Thread(target=self._watch, name="platbench-budget", daemon=True).start()

    def _watch(self) -> None:
        if self._done.wait(self.stop_after_s):
            return
        # Sent again every RESEND_S until the caller disarms: Python drops an exception raised in a finalizer or a
        # __del__ ("Exception ignored in …"), so a SIGINT that lands while one runs is lost (seen under load: the
        # endpoint ran on 110 s past a watch that had fired once)
        while True:
            with self._lock:
                if not self._armed:
                    return
                self.fired_at = self.fired_at or time.monotonic()
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            if self._done.wait(RESEND_S):
                return

    def disarm(self, interrupted: bool) -> None:
        """No interrupt after this; `interrupted`: the caller has already had a KeyboardInterrupt. A watch that
        fired while the caller was finishing has its interrupt on the way: it is taken here (KeyboardInterrupt
        raised from this call), not in the teardown that follows."""
        with self._lock:
            self._armed = False
        self._done.set()
        if self.fired and not interrupted:
            threading.Event().wait(1.0)  # a lock wait: the pending interrupt ends it at once

    def end(self) -> None:
        """Billing ended (everything deleted)."""
        if self.ended is None:
            self.ended = time.monotonic()

    def text(self) -> str:
        return (f"{self.spent_usd:.4f} USD spent of --max-usd {self.max_usd:g} ({self.usd_per_hour:.4f} USD/h × "
                f"{self.seconds:.1f} s)")
