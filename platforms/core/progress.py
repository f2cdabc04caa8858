"""Progress shown while a job runs: phases (staging, queued, training …) and epochs, with rich."""
from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class JobProgress:
    """One bar for the job's epochs plus a line for the current phase; phase start times are kept."""

    def __init__(self, console: Console | None = None, enabled: bool = True, verbose: bool = False):
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.verbose = verbose  # echo a job's log lines (they are always in its train.log)
        self.phases: list[tuple[str, float]] = []
        self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                                  console=self.console, disable=not enabled, transient=False)
        self._task = None
        self._last_accuracy = ""  # the last test accuracy a job's log reported (log_line)

    def __enter__(self) -> "JobProgress":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is not None:  # an error's one line is all that should remain: the bar goes
            self._progress.live.transient = True
        self._progress.__exit__(*exc)

    def phase(self, name: str) -> None:
        self.phases.append((name, time.time()))
        if self._task is None:
            self._task = self._progress.add_task(name, total=None, status="")
        self._progress.update(self._task, description=name)

    def epochs(self, total: int, done: int = 0) -> None:
        if self._task is None:
            self.phase("training")
        self._progress.update(self._task, total=total, completed=done)

    def epoch_done(self, epoch: int, status: str) -> None:
        self._progress.update(self._task, completed=epoch, status=status)

    def batch(self, status: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, status=status)

    def log_line(self, line: str) -> None:
        """One line of a job's log: the trainer's `- Epoch: N` moves the bar, with the last `- Test accuracy`
        seen (trainer/loglines.py); the line itself is echoed only when verbose (`launch --verbose`)."""
        import re

        from trainer import loglines

        if self.verbose:
            self.print(line)
        m = re.match(loglines.regex("test_accuracy"), line)
        if m:
            self._last_accuracy = f"test acc {float(m.group(1)):.4f}"
        m = re.match(loglines.regex("epoch"), line)
        if m:
            self.epoch_done(int(float(m.group(1))), self._last_accuracy)

    def print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)
