"""`platbench scenario record PLATFORM`: walk a human through Scenario.md, one step at a time.

For each scenario step the recorder shows the step's text, runs a stopwatch while the human does it,
then asks what they did, how, the outcome, the docs they used and notes. Every answered action is
written to scenarios/<platform>.yaml at once (atomically), and so is every finished scenario step
(the `scenario_steps_done` bookmark), so Ctrl-C or the end of input loses at most the action being
answered, and running the command again resumes where it stopped.
"""
from __future__ import annotations

import datetime as dt
import getpass
import math
import os
import platform as _platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from pydantic import ValidationError
from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel
from rich.prompt import Confirm, Prompt

from platforms.errors import UserError
from platforms.scorecard.loader import Project, dump_record, load_record
from platforms.scorecard.models import DOCS_ANSWERED, ML_KNOWLEDGE, OUTCOMES, Placeholder, Record, Step
from platforms.scorecard.rubric import Rubric
from platforms.scorecard.scenario import ScenarioStep
from platforms.scorecard.scoring import score
from platforms.scorecard.source import Invalid, atomic_write_text


@dataclass
class Recorder:
    project: Project
    platform: str
    rubric: Rubric
    steps: Sequence[ScenarioStep]
    platforms: Sequence[str]
    console: Console
    clock: Callable[[], float] | None = None  # None: _now (tests replace it)

    @property
    def path(self):
        return self.project.record_path(self.platform)

    @property
    def shown_path(self) -> str:
        return self.project.display(self.path)

    # ------------------------------------------------------------------------------------ the walk
    def run(self, only_step: int | None = None) -> Record:
        numbers = [st.number for st in self.steps]
        if only_step is not None and only_step not in numbers:
            raise UserError(f"--step {only_step}: Scenario.md has steps {numbers[0]}–{numbers[-1]}")
        record = self._open()
        if only_step is not None:
            todo = [st for st in self.steps if st.number == only_step]
        else:
            todo = [st for st in self.steps if st.number not in record.scenario_steps_done]
            if not todo:
                self.console.print(f"All {len(self.steps)} scenario steps are recorded in {self.shown_path}. "
                                   "To add to one: [bold]--step N[/bold].")
                self._summary(record)
                return record
        for st in todo:
            self._walk_step(record, st)
        self.console.print(f"\n[bold green]Recorded.[/bold green] {len(record.steps)} steps in {self.shown_path}.")
        self._summary(record)
        return record

    def _open(self) -> Record:
        record = None
        if self.path.exists():
            try:
                record = load_record(self.path, self.rubric, self.platforms, self.shown_path)
            except Invalid as exc:
                raise exc.to_user_error() from None
        if isinstance(record, Placeholder):
            record = None  # "not recorded" until now: this recording replaces the placeholder
        if record is not None:
            done = sorted(record.scenario_steps_done)
            self.console.print(f"Resuming [bold]{self.shown_path}[/bold]: {len(record.steps)} steps recorded"
                               + (f", scenario steps {', '.join(map(str, done))} finished." if done else "."))
            return record
        self.console.print(Panel.fit(
            f"Recording the platbench scenario on [bold]{self.platform}[/bold] into {self.shown_path}.\n"
            "Each answer is saved at once; stop any time with Ctrl-C and run the same command to resume.",
            title="platbench scenario record"))
        title = self._text("Title of this record", default=f"{self.platform}: the platbench scenario as a new user")
        by = self._text("Recorded by (your name)", default=_whoami() or None)
        on = self._date("Recorded on (YYYY-MM-DD)", default=dt.date.today().isoformat())
        versions = self._versions()
        record = Record.model_validate(
            {"platform": self.platform, "title": title, "recorded_by": by, "recorded_on": on, "versions": versions},
            context={"rubric": self.rubric, "platforms": self.platforms})
        self._save(record)
        return record

    def _walk_step(self, record: Record, st: ScenarioStep) -> None:
        crit = self.rubric.criterion(st.criterion)
        self.console.print()
        self.console.print(Panel(Markdown(st.text or "(no text)"),
                                 title=f"Step {st.number}/{len(self.steps)}. {st.title}",
                                 subtitle=f"criterion: {crit.title} ({crit.id})", title_align="left"))
        existing = [s for s in record.steps if s.scenario_step == st.number]
        if existing:
            self.console.print(f"Already recorded for step {st.number}:")
            for s in existing:
                self.console.print(f"  • {s.action} ({s.outcome}, {s.minutes:g} min)", markup=False, highlight=False)
        first = not existing
        while True:
            if first:
                choice = Prompt.ask("Record what you do for this step, or skip it (nothing to do on this platform)",
                                    choices=["record", "skip"], default="record", console=self.console)
                if choice == "skip":
                    break
            elif not Confirm.ask(f"Another action for step {st.number}?", default=False, console=self.console):
                break
            first = False
            step = self._action(st)
            record.steps.append(step)
            self._save(record)
            self.console.print(f"[green]Saved[/green] step {len(record.steps)} to {self.shown_path}.")
        if st.number not in record.scenario_steps_done:
            record.scenario_steps_done.append(st.number)
            record.scenario_steps_done.sort()
        self._save(record)

    def _action(self, st: ScenarioStep) -> Step:
        minutes = self._stopwatch()
        data = {
            "scenario_step": st.number,
            "action": self._text("What did you do? (one line)"),
            "how": self._text("How: the command you ran or the UI path you clicked (Console > Jobs > Create)"),
            "criterion": Prompt.ask("Criterion", choices=self.rubric.ids, default=st.criterion, console=self.console),
            "minutes": minutes,
            "outcome": Prompt.ask("Outcome: done, workaround (worked, not the documented way) or blocked",
                                  choices=list(OUTCOMES), default="done", console=self.console),
            # for the developer-experience rubric (scoring.yaml's developer_experience)
            "ml_knowledge": Prompt.ask("ML knowledge this needed: none, some (e.g. what a validation split is) or "
                                       "expert (an option only an ML engineer would know)",
                                       choices=list(ML_KNOWLEDGE), default="none", console=self.console),
            "docs_answered": Prompt.ask("Did the platform's own docs answer what you needed: yes, partly, or no "
                                        "(you needed a tutorial elsewhere, or found it by trial)",
                                        choices=list(DOCS_ANSWERED), default="yes", console=self.console),
        }
        docs = Prompt.ask("Docs you used (URLs or paths, separated by spaces; Enter for none)", default="",
                          show_default=False, console=self.console).split()
        if docs:
            data["docs"] = docs
        notes = Prompt.ask("Notes (Enter for none)", default="", show_default=False, console=self.console).strip()
        if notes:
            data["notes"] = notes
        try:
            return Step.model_validate(data, context={"rubric": self.rubric})
        except ValidationError as exc:  # pragma: no cover - every answer is checked as it is typed
            raise UserError(f"recorder produced an invalid step: {exc.errors()[0]['msg']}") from None

    def _stopwatch(self) -> float:
        while True:
            answer = Prompt.ask("Press Enter to start the stopwatch, then do the step "
                                "(or type the minutes it took, if you did it already)",
                                default="", show_default=False, console=self.console).strip()
            if not answer:
                break
            minutes = _minutes(answer)
            if minutes is not None:
                return minutes
            self.console.print("[red]Type a number of minutes (e.g. 4.5), or just press Enter.[/red]")
        clock = self.clock or _now
        start = clock()
        self.console.print(f"[bold]Stopwatch running[/bold] since {dt.datetime.now():%H:%M:%S}. Do the step now.")
        Prompt.ask("Press Enter when you are done", default="", show_default=False, console=self.console)
        elapsed = max(0.0, (clock() - start) / 60.0)
        suggested = f"{round(elapsed, 1):g}"
        while True:
            answer = Prompt.ask("Minutes spent (correct it if you paused, e.g. while only waiting for training)",
                                default=suggested, console=self.console).strip()
            minutes = _minutes(answer)
            if minutes is not None:
                return minutes
            self.console.print("[red]Type a number of minutes, 0 or more.[/red]")

    # --------------------------------------------------------------------------------- prompting
    def _text(self, question: str, default: str | None = None) -> str:
        while True:
            kwargs = {"default": default} if default else {}
            answer = Prompt.ask(question, console=self.console, **kwargs).strip()
            if answer:
                return answer
            self.console.print("[red]An answer is needed here.[/red]")

    def _date(self, question: str, default: str) -> dt.date:
        while True:
            answer = Prompt.ask(question, default=default, console=self.console).strip()
            try:
                day = dt.date.fromisoformat(answer)
            except ValueError:
                self.console.print("[red]Write the date as YYYY-MM-DD.[/red]")
                continue
            if day > dt.date.today() + dt.timedelta(days=1):
                self.console.print("[red]That date is in the future.[/red]")
                continue
            return day

    def _versions(self) -> dict[str, str]:
        default = " ".join(f"{k}={v}" for k, v in _detected_versions().items())
        while True:
            answer = Prompt.ask("Versions of the tools you used (tool=version, separated by spaces; '-' for none)",
                                default=default, console=self.console).strip()
            if answer in ("", "-"):
                return {}
            pairs = [p.split("=", 1) for p in answer.split()]
            if all(len(p) == 2 and p[0] and p[1] for p in pairs):
                return {k: v for k, v in pairs}
            self.console.print("[red]Write tool=version pairs, e.g. platbench=0.1.0 docker=27.3.1[/red]")

    # ------------------------------------------------------------------------------------ output
    def _save(self, record: Record) -> None:
        atomic_write_text(self.path, dump_record(record))

    def _summary(self, record: Record) -> None:
        self.console.print(f"\nRatings so far ({self.shown_path}):")
        for rubric in (self.rubric, self.rubric.developer_experience):
            if rubric is None:
                continue
            card = score(rubric, record)
            if rubric is not self.rubric:
                self.console.print(f"  {rubric.title or 'Developer experience'}:", markup=False, highlight=False)
            for s in card.scores:
                self.console.print(f"  {s.title:<36} {s.cell():<10} {s.rule_text()}", markup=False, highlight=False)
            self.console.print(f"  {'Total':<36} {card.total.cell()}", markup=False, highlight=False)


def _now() -> float:
    return time.monotonic()


def _minutes(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return round(value, 2)


def _whoami() -> str:
    if shutil.which("git"):
        try:
            out = subprocess.run(["git", "config", "user.name"], capture_output=True, text=True, timeout=5)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not an error
        return os.environ.get("USER", "")


def _detected_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    try:
        out["platbench"] = version("platbench")
    except PackageNotFoundError:
        pass
    out["python"] = _platform.python_version()
    return out
