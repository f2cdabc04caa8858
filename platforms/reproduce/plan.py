"""What `platbench reproduce STUDY` will run: one sweep per model and learning rate of the study's recipe (the
ladder and seeds as its cells), then the study's request plans against the served model, on each platform.
Made from the protocol alone; `--dry-run` prints it with its cost plan and needs no credentials."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from platforms.errors import UserError
from platforms.reproduce.protocol import Protocol



@dataclass(frozen=True)
class Group:
    """One sweep: a model at one learning rate (a factor of its preset's, 1.0 = the preset's own)."""
    model: str
    lr_factor: Optional[float]
    hp: dict[str, str]

    @property
    def label(self) -> str:
        return self.model + ("" if self.lr_factor is None else f" lr×{self.lr_factor:g}")


@dataclass
class Plan:
    proto: Protocol
    platforms: list[str]
    data: Path
    ladder: list[Optional[int]]          # None: every image
    seeds: list[int]
    epochs: int
    groups: list[Group]
    settings: dict[str, dict[str, str]] = field(default_factory=dict)
    full: bool = False                   # the study's own ladder and epochs, not the local small version

    def sweep_name(self, group: Group) -> str:
        """Stable for the same definition, so the same command resumes the same sweeps."""
        doc = {"data": str(self.data.resolve()), "platforms": self.platforms, "ladder": self.ladder,
               "seeds": self.seeds, "epochs": self.epochs, "model": group.model, "hp": group.hp,
               "settings": self.settings}
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:8]
        lr = "" if group.lr_factor is None else f"-lr{group.lr_factor:g}"
        return f"reproduce-{self.proto.study}-{group.model}{lr}-{digest}"

    @property
    def runs(self) -> int:
        return len(self.groups) * len(self.platforms) * len(self.ladder) * len(self.seeds)

    def missing_options(self) -> list[str]:
        """The recipe's --hp keys the trainer does not take (yet): the study cannot run as written."""
        from trainer.hyperparameters import FLAGS

        keys = {k for g in self.groups for k in g.hp}
        return sorted(k for k in keys if k.replace("_", "-") not in FLAGS)

    def missing_models(self) -> list[str]:
        """The recipe's models the trainer has no preset for (yet)."""
        from trainer.models import PRESETS

        return sorted({g.model for g in self.groups} - set(PRESETS))

    def serving(self) -> list[str]:
        # reproduce load-tests only a model it serves itself: the trainer's own server, so a run on this machine
        from platforms.core import registry

        return [p for p in self.platforms if p == registry.this_machine()] if self.proto.requests else []


def make(proto: Protocol, platforms: list[str], data: Path, full: bool = False,
         settings: dict[str, dict[str, str]] | None = None) -> Plan:
    from platforms.core import registry

    plats = list(dict.fromkeys(platforms or [registry.this_machine()]))
    for p in plats:
        registry.get(p)  # an unknown platform: one line
    ladder: list[Optional[int]] = list(proto.ladder if full else proto.local.ladder) or [None]
    epochs = proto.recipe.epochs if full else proto.local.epochs
    factors: list[Optional[float]] = list(proto.recipe.lr_factors) or [None]
    models = proto.recipe.models if full or not proto.local.models else proto.local.models
    groups = [Group(m, f, dict(proto.recipe.hp)) for m in models for f in factors]
    return Plan(proto, plats, data, ladder, list(proto.local.seeds), epochs, groups, settings or {}, full)


def request_count(plan: Plan, requests: int) -> int:
    """A request plan's count here: the study's, scaled down for the local small version."""
    return requests if plan.full else max(10, round(requests * plan.proto.local.requests_scale))


def text(plan: Plan, max_usd: Optional[float] = None) -> str:
    """The dry run: runs, platforms, what cannot run yet, the cost plan (platforms/core/cost_plan.py)."""
    from platforms.core import cost_plan
    from platforms.core.api import Job

    p = plan.proto
    pcs = ", ".join("all" if n is None else str(n) for n in plan.ladder)
    out = [f"reproduce {p.study}: {p.title} ({p.by}, {p.when}) — nothing is created",
           f"  recipe: {p.recipe.what}",
           f"  {'the study' if plan.full else 'local small version'}: {plan.runs} training run(s) = "
           f"{len(plan.groups)} model/lr group(s) × {len(plan.platforms)} platform(s) [{', '.join(plan.platforms)}] × "
           f"{len(plan.ladder)} images/class [{pcs}] × {len(plan.seeds)} seed(s), {plan.epochs} epoch(s), data {plan.data}"]
    for g in plan.groups:
        hp = " ".join(f"--hp {k}={v}" for k, v in g.hp.items())
        lr = "" if g.lr_factor is None else f", lr = the preset's × {g.lr_factor:g}"
        out.append(f"    sweep {plan.sweep_name(g)}: model {g.model}{lr} {hp}".rstrip())
    if p.recipe.select_by:
        out.append(f"  per model: {p.recipe.select_by}")
    for rp in p.requests:
        where = ", ".join(plan.serving()) or "no platform of this plan (reproduce serves on local only)"
        out.append(f"  requests {rp.id}: {rp.what}; {request_count(plan, rp.requests)} requests at concurrency "
                   f"{rp.concurrency}, {rp.retries} retries; failure: {rp.failure}; on {where}")
    if p.batch_unit:
        out.append(f"  batch unit: {p.batch_unit.images} images ({p.batch_unit.what})")
    if p.statistic:
        out.append(f"  statistic: {p.statistic.theirs} on {p.statistic.values}, beside {p.statistic.ours}")
    if p.cost_horizon:
        hours = ", ".join(f"{k} {v:g} h" for k, v in p.cost_horizon.hours.items())
        out.append(f"  cost horizon (the study's): {hours}")
    # the model presets are checked when the plan runs (the trainer's model list imports torch)
    blocked = [f"trainer option {k} (not in the trainer yet)" for k in plan.missing_options()]
    for note in blocked + list(p.not_built):
        out.append(f"  not built: {note}")
    lines = []
    for platform in plan.platforms:
        for g in plan.groups:
            job = Job(data=plan.data, out=Path("runs") / "reproduce", model=g.model, epochs=plan.epochs,
                      per_class=plan.ladder[-1], seed=plan.seeds[0], hyperparameters={})
            ln = cost_plan.line(platform, job, plan.settings.get(platform, {}), f"{platform}/{g.label}")
            lines += [ln] * (len(plan.ladder) * len(plan.seeds))
    out.append(cost_plan.render(_one_per_label(lines), max_usd))
    cost_plan.hold(lines, max_usd)
    return "\n".join(out)


def _one_per_label(lines: list) -> list:
    """The cost plan's lines, one per platform and group, priced for all of its runs."""
    from dataclasses import replace

    seen: dict[str, tuple[object, int]] = {}
    for ln in lines:
        first, n = seen.get(ln.label, (ln, 0))
        seen[ln.label] = (first, n + 1)
    out = []
    for label, (ln, n) in seen.items():
        hours = None if ln.hours is None else ln.hours * n
        upper = None if ln.upper_hours is None else ln.upper_hours * n
        out.append(replace(ln, label=f"{label} ({n} run{'s' if n != 1 else ''})", hours=hours, upper_hours=upper))
    return out


def refuse_blocked(plan: Plan) -> None:
    """A run that the trainer cannot do yet is refused in one line, before anything is created."""
    missing = [f"--hp {k}" for k in plan.missing_options()] + [f"model {m}" for m in plan.missing_models()]
    if missing:
        raise UserError(f"reproduce {plan.proto.study}: the trainer does not take {', '.join(missing)} yet; "
                        "`--dry-run` shows the plan; nothing was created")
