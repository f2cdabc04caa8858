"""What `platbench reproduce STUDY` will run: one sweep per model and learning rate of the study's recipe (the
ladder and seeds as its cells), then the study's request plans against each platform's trained model where it
serves: on this machine at each of the protocol's deployment targets, on a platform with an endpoint on that
endpoint. Made from the protocol alone; `--dry-run` prints it with its cost plan and needs no credentials."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from platforms.errors import UserError
from platforms.reproduce.protocol import ENDPOINT, TARGETS, Protocol

ENDPOINT_KEY = "endpoint."   # --set P:endpoint.KEY=VALUE: a setting of P's endpoint alone


@dataclass(frozen=True)
class Group:
    """One sweep: a model at one learning rate (a factor of its preset's, 1.0 = the preset's own)."""
    model: str
    lr_factor: Optional[float]
    hp: dict[str, str]

    @property
    def label(self) -> str:
        return self.model + ("" if self.lr_factor is None else f" lr×{self.lr_factor:g}")


@dataclass(frozen=True)
class Serving:
    """Where the request plans run: a platform at one deployment target; `skipped` says why not, when it cannot."""
    platform: str
    target: str                          # a protocol TARGETS key, or ENDPOINT
    skipped: Optional[str] = None

    @property
    def label(self) -> str:
        return f"{self.platform}/{self.target}"


def target_skipped(target: str) -> Optional[str]:
    """Why this machine cannot serve at `target` (None: it can). Cheap: no torch import (the dry run's)."""
    if target == "torch-gpu":
        from trainer.device import driver_version

        return None if driver_version() else "no NVIDIA driver on this machine, so no CUDA device"
    if target == "onnx-cpu":
        from trainer.errors import ConfigError
        from trainer.onnx_export import require

        try:
            require()
        except ConfigError as exc:
            return str(exc)
    return None


@dataclass
class Plan:
    proto: Protocol
    platforms: list[str]
    data: Path
    ladder: list[Optional[int]]          # None: every image
    seeds: list[int]
    epochs: int
    groups: list[Group]
    settings: dict[str, dict[str, str]] = field(default_factory=dict)           # training's (--set P:KEY=VALUE)
    endpoint_settings: dict[str, dict[str, str]] = field(default_factory=dict)  # each endpoint's
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

    def serving(self) -> list[Serving]:
        """Every platform of the plan where the request plans run, and those that cannot serve, with why."""
        from platforms.core import registry

        if not self.proto.requests:
            return []
        out = []
        for p in self.platforms:
            if p == registry.this_machine():
                out += [Serving(p, t, target_skipped(t)) for t in self.proto.targets]
            else:
                try:
                    registry.endpoint_class(p)
                    out.append(Serving(p, ENDPOINT))
                except UserError as exc:
                    out.append(Serving(p, ENDPOINT, f"no endpoint to serve its model: {exc}"))
        return out

    def endpoint(self, platform: str):
        """The platform's endpoint as this plan deploys it (nothing created: its settings parsed)."""
        from platforms.bench.endpoint import endpoint_for

        return endpoint_for(platform, self.endpoint_settings.get(platform, {}))


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
    def hp(model: str) -> dict[str, str]:
        return dict(proto.recipe.hp) if full else {**proto.recipe.hp, **proto.local.hp,
                                                   **proto.local.model_hp.get(model, {})}

    groups = [Group(m, f, hp(m)) for m in models for f in factors]
    # request plans and aws-azure's per-batch pipeline both deploy an endpoint
    training, endpoints = split_settings(settings or {}, bool(proto.requests) or proto.batch_unit is not None)
    return Plan(proto, plats, data, ladder, list(proto.local.seeds), epochs, groups, training, endpoints, full)


def split_settings(settings: dict[str, dict[str, str]], serves: bool) -> tuple[dict, dict]:
    """--set P:KEY=VALUE into (training's, the endpoint's). A key goes to P's training settings when they take
    it and to P's endpoint too when its settings take it (the account's region, bucket, role, image: one --set
    for both); --set P:endpoint.KEY=VALUE to the endpoint alone, over a plain key (e.g. a CPU instance to serve
    what a GPU trained: the two settings models share `instance_type` but not its default). A key neither
    takes is one line naming both lists."""
    from platforms.core import registry

    training: dict[str, dict[str, str]] = {}
    endpoints: dict[str, dict[str, str]] = {}
    for p, pairs in settings.items():
        model = getattr(registry.get(p), "settings_model", None)
        if model is None:  # a platform that takes no settings (this machine): its own check refuses them
            training[p] = dict(pairs)
            continue
        train_keys = set(model.model_fields) if model is not None else set()
        try:
            ep_keys = set(registry.endpoint_class(p).settings_model.model_fields) if serves else set()
        except UserError:
            ep_keys = set()
        for key, value in pairs.items():
            if key.startswith(ENDPOINT_KEY):
                bare = key[len(ENDPOINT_KEY):]
                if bare not in ep_keys:
                    raise UserError(f"--set {p}:{key}: {p}'s endpoint takes no {bare!r}"
                                    + (f"; it takes: {', '.join(sorted(ep_keys))}" if ep_keys else
                                       " (this plan deploys no endpoint on it)"))
                endpoints.setdefault(p, {})[bare] = value
                continue
            if key not in train_keys and key not in ep_keys:
                raise UserError(f"--set {p}:{key}: neither {p}'s training settings nor its endpoint's take {key!r}; "
                                f"training: {', '.join(sorted(train_keys)) or 'none'}; endpoint (endpoint.KEY): "
                                f"{', '.join(sorted(ep_keys)) or 'none'}")
            if key in train_keys:
                training.setdefault(p, {})[key] = value
            if key in ep_keys:
                endpoints.setdefault(p, {}).setdefault(key, value)
    return training, endpoints


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
    serving = plan.serving()
    where = ", ".join(s.label for s in serving if not s.skipped) or "no platform of this plan"
    for rp in p.requests:
        out.append(f"  requests {rp.id}: {rp.what}; {request_count(plan, rp.requests)} requests at concurrency "
                   f"{rp.concurrency}, {rp.retries} retries; failure: {rp.failure}; on {where}")
    out += _serving_lines(plan, serving)
    if p.batch_unit:
        from platforms.reproduce import pipeline_plan

        out.append(f"  batch unit: {p.batch_unit.images} images ({p.batch_unit.what})")
        out += pipeline_plan.plan_lines(plan)
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
    endpoints = _endpoint_budget_lines(plan, max_usd)  # an endpoint the budget cannot hold: its own line first
    out.append(cost_plan.render(_one_per_label(lines), max_usd))
    cost_plan.hold(lines, max_usd)
    out += endpoints
    return "\n".join(out)


def _endpoint_budget_lines(plan: Plan, max_usd: Optional[float]) -> list[str]:
    """The plan's endpoints in its budget: none has an upper bound (each is up until its requests end), so under
    --max-usd each priced one is watched against what is left of the one budget, and an unpriced one (its spend
    cannot be watched) is refused in one line before anything is created."""
    from platforms.core.cost_plan import hold_endpoint

    counts = {s.platform: len(plan.groups) for s in plan.serving() if s.target == ENDPOINT and not s.skipped}
    if plan.proto.batch_unit:
        from platforms.reproduce import pipeline_plan

        for p in pipeline_plan.cloud_platforms(plan):
            counts[p] = counts.get(p, 0) + 1  # the pipeline deploys the first group's model once
    out = []
    if counts and max_usd is not None and max_usd <= 0:  # an endpoint bills from its creation
        raise UserError(f"--max-usd {max_usd:g}: the plan deploys an endpoint on {', '.join(counts)}, which bills from "
                        "its creation; nothing was created")
    for p, requests in deployments(plan).items():
        cost = plan.endpoint(p).cost()
        hold_endpoint(p, cost.usd_per_hour if cost else None, requests, max_usd)
        price = f"{cost.usd_per_hour:.4f} USD/h each" if cost else "no price: cost unknown"
        watch = (f"; no upper bound: the watch stops each at what is left of --max-usd {max_usd:g}"
                 if max_usd is not None else "")
        out.append(f"  endpoints: {counts[p]} deployment(s) on {p}, {price}{watch}")
    return out


def _serving_lines(plan: Plan, serving: list[Serving]) -> list[str]:
    """Each deployment target of the request plans: what serves there, or why it is skipped; an endpoint with its
    price × expected hours (no credentials: its settings parsed, nothing asked of the cloud)."""
    from platforms.core.cost_plan import endpoint_text

    out = []
    per_model = sum(request_count(plan, rp.requests) for rp in plan.proto.requests)
    for s in serving:
        if s.skipped:
            out.append(f"  target {s.label}: skipped — {s.skipped}")
        elif s.target != ENDPOINT:
            out.append(f"  target {s.label}: {TARGETS[s.target]}, loopback HTTP, the model of each group's run here")
        else:
            ep = plan.endpoint(s.platform)
            cost = ep.cost()
            # each endpoint's settings name its machine their own way
            machine = next((f"{k} {getattr(ep.cfg, k)}" for k in ("instance_type", "machine_type", "workload_size",
                                                                 "preset") if getattr(ep.cfg, k, None)),
                           "its default machine")
            out.append(f"  target {s.label}: each group's {s.platform} model deployed once on {s.platform}'s endpoint "
                       f"({machine}), every request plan through its SDK, then deleted")
            price = (endpoint_text(s.platform, cost.usd_per_hour, cost.basis, per_model) if cost is not None else
                     f"no endpoint price for it in platforms/{s.platform}/prices.yaml")
            out.append(f"    {price} (per deployment, {len(plan.groups)} deployment(s))")
    return out


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
        out.append(replace(ln, label=f"{label} ({n} run{'s' if n != 1 else ''})", hours=hours, upper_hours=upper,
                           runs=n))
    return out


def deployments(plan: Plan) -> dict[str, int]:
    """Each platform whose endpoint the plan deploys (for the request plans or aws-azure's pipeline), with the
    requests one deployment answers."""
    per_model = sum(request_count(plan, rp.requests) for rp in plan.proto.requests)
    out = {s.platform: per_model for s in plan.serving() if s.target == ENDPOINT and not s.skipped}
    if plan.proto.batch_unit:
        from platforms.reproduce import pipeline_plan

        images = len(pipeline_plan.batch_files(plan.data))
        for p in pipeline_plan.cloud_platforms(plan):
            out[p] = max(out.get(p, 0), images)
    return out


def check_endpoints(plan: Plan, max_usd: Optional[float] = None) -> None:
    """Each endpoint's settings, credentials and bucket, and each pipeline store's bucket, checked before any
    training starts: a cloud's training is not paid for to learn after it that its model cannot be served; with
    a budget, an endpoint it cannot watch (no price) or expects to cross is refused here (one line; nothing
    created)."""
    from platforms.core.cost_plan import hold_endpoint

    if plan.proto.batch_unit:
        from platforms.reproduce import pipeline_plan, pipeline_store

        for p in pipeline_plan.cloud_platforms(plan):
            pipeline_store.checked(p, plan.settings.get(p, {}))
    for p, requests in deployments(plan).items():
        ep = plan.endpoint(p)
        cost = ep.cost()
        hold_endpoint(p, cost.usd_per_hour if cost else None, requests, max_usd)
        ep.check()


def refuse_blocked(plan: Plan) -> None:
    """A run that the trainer cannot do yet is refused in one line, before anything is created."""
    missing = [f"--hp {k}" for k in plan.missing_options()] + [f"model {m}" for m in plan.missing_models()]
    if missing:
        raise UserError(f"reproduce {plan.proto.study}: the trainer does not take {', '.join(missing)} yet; "
                        "`--dry-run` shows the plan; nothing was created")
