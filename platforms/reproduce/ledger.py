"""One --max-usd budget for a whole `platbench reproduce` command (docs/reproduce.md): its sweeps, endpoints and
pipeline each get only what is left of it, and after the budget stopped anything nothing more starts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional


@dataclass
class Ledger:
    """--max-usd for the whole command: each sweep and each endpoint is given only what is left of it (the budget
    less what ended cells cost and each endpoint's watch counted); once the budget stopped anything, nothing
    more starts. Without a budget it holds nothing and everything starts."""
    max_usd: Optional[float] = None
    spent: float = 0.0
    stopped: Optional[str] = None      # what the budget stopped, in words
    told: bool = False                 # the refusal is said once for the command

    def left(self) -> Optional[float]:
        return None if self.max_usd is None else max(0.0, self.max_usd - self.spent)

    def refuses(self, what: str, say: Callable[[str], None]) -> bool:
        """Whether `what` must not start (said in one line, the first time): the budget stopped something, or none
        of it is left."""
        if self.max_usd is None:
            return False
        why = (f"the budget stopped {self.stopped}" if self.stopped else
               f"--max-usd {self.max_usd:g} is spent ({self.spent:.4f} USD)" if self.spent and self.left() <= 0 else
               None)
        if why and not self.told:
            say(f"budget: {what} not started, nor any later sweep, endpoint or pipeline: {why}")
            self.told = True
        return why is not None

    def count_sweep(self, name: str, since_ms: int) -> None:
        """What the sweep's cells that started since `since_ms` cost (billed, else the list estimate, as the sweep
        counts them), and whether the budget stopped one."""
        if self.max_usd is None:
            return
        from platforms.bench.sweep import search_all
        from platforms.core import tracking
        from platforms.core.cloud_job import STOPPED_BY_TAG
        from platforms.core.tracking import Tag

        c = tracking.client()
        exp = tracking.experiment_id(c)
        for r in search_all(c, exp, f"tags.`{Tag.SWEEP}` = '{name}' and attributes.start_time >= {since_ms}"):
            if r.data.tags.get(Tag.KIND) is not None:  # the sweep's parent run
                continue
            m = r.data.metrics
            self.spent += m.get("cost_usd", m.get("cost_list_estimate_usd", 0.0))
            if r.data.tags.get(STOPPED_BY_TAG) == "budget" and not self.stopped:
                self.stopped = f"a cell of sweep {name} (MLflow run {r.info.run_id})"

    def count_endpoint(self, ep, stopped: bool) -> None:
        if ep is not None and getattr(ep, "budget", None) is not None:
            self.spent += ep.budget.spent_usd
        if stopped and not self.stopped:
            self.stopped = f"endpoint {ep.name}"
