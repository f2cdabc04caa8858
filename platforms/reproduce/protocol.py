"""A study's protocol as data (platforms/reproduce/studies/<study>.yaml), validated here: how the study trained
(the trainer's --hp settings), its ladder, its request plans, its batch unit, its statistic, its cost horizon,
and the figures it published, each with where in the study it stands. No figure of a study is written in code."""
from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from platforms.reproduce import studies_dir, study_names
from platforms.errors import UserError


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Key = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]*$", max_length=40)]

# Quantities a study figure can be, their label and the unit the page shows them in (the study's own unit).
QUANTITIES: dict[str, tuple[str, str]] = {  # name → (label, unit)
    "latency_p50_ms": ("median latency, single invokes", "ms"),
    "seconds_1000_requests_at_10": ("seconds for 1,000 requests at 10 concurrent", "s"),
    "failed_requests": ("failed requests", "requests"),
    "endpoint_usd_per_hour": ("endpoint cost per hour", "USD/h"),
    "endpoint_usd_per_day": ("endpoint cost per day", "USD/day"),
    "endpoint_usd_per_month": ("endpoint cost per month", "USD/month"),
    "endpoint_usd_per_year": ("endpoint cost per year", "USD/year"),
    "client_vm_usd_per_hour": ("client VM cost per hour", "USD/h"),
    "deployment_usd_per_hour": ("whole deployment cost per hour", "USD/h"),
    "deployment_usd_per_day": ("whole deployment cost per day", "USD/day"),
    "mean_accuracy_at_5_per_class": ("mean test accuracy at 5 images per class", "%"),
    "test_accuracy": ("test accuracy", "%"),
    "test_top5_accuracy": ("test top-5 accuracy", "%"),
    "test_images_per_s": ("test throughput", "images/s"),
    "seconds_per_epoch": ("seconds per epoch", "s"),
    "parameters_millions": ("parameters", "M"),
    "download_s_per_mb": ("download time per batch", "s/MB"),
    "upload_s_per_mb": ("upload time per batch", "s/MB"),
    "inference_s_per_mb": ("inference time per batch", "s/MB"),
    "throughput_mb_per_s": ("throughput (retrieval + inference)", "MB/s"),
    "kruskal_wallis_h": ("Kruskal–Wallis H on per-batch values (theirs)", "H"),
    "kruskal_wallis_h_download": ("Kruskal–Wallis H on per-batch download times (theirs)", "H"),
    "kruskal_wallis_h_upload": ("Kruskal–Wallis H on per-batch upload times (theirs)", "H"),
    "kruskal_wallis_h_inference": ("Kruskal–Wallis H on per-batch inference times (theirs)", "H"),
    "kruskal_wallis_h_throughput": ("Kruskal–Wallis H on per-batch throughputs (theirs)", "H"),
    "frames_per_s_at_100_parallel": ("frames per second, 100 in parallel", "FPS"),
    "train_time_ratio_accurate_to_fast": ("training time, accurate ÷ fast", "×"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Recipe(_Strict):
    """How the study trained, as trainer settings any run can use."""
    what: Text                                   # the study's words, short
    models: list[Key] = Field(min_length=1)      # platbench model presets
    epochs: int = Field(ge=1)
    hp: dict[str, str] = Field(default_factory=dict)   # --hp KEY=VALUE, every run
    # per run, the learning rate as multiples of the preset's (JumpStart: default and default/5); empty: one lr
    lr_factors: list[float] = Field(default_factory=list)
    select_by: Optional[Text] = None             # which of a model's runs stands for it (e.g. best validation)


class RequestPlan(_Strict):
    id: Key
    what: Text
    requests: int = Field(ge=1)
    concurrency: int = Field(ge=1)
    retries: int = Field(ge=0)
    warmup: int = Field(ge=0, default=0)
    failure: Text                                # what counts as a failed request, in the study's terms


# Where this machine serves a request plan (Roboflow's deployment targets that platbench can run): the trainer's
# server with torch on the CPU or on CUDA, or the model exported to ONNX and run by onnxruntime on the CPU. A
# platform whose SPEC names an endpoint serves on that endpoint instead (target "endpoint").
TARGETS: dict[str, str] = {
    "torch-cpu": "the trainer's server, torch on the CPU",
    "torch-gpu": "the trainer's server, torch on CUDA",
    "onnx-cpu": "the model exported to ONNX, the trainer's server with onnxruntime on the CPU",
}
ENDPOINT = "endpoint"
TargetName = Literal[tuple(TARGETS)]  # type: ignore[valid-type]


class BatchUnit(_Strict):
    images: int = Field(ge=1)
    what: Text


class Statistic(_Strict):
    name: Literal["kruskal_wallis"]
    values: Text                                 # on what values (per batch, per run)
    theirs: Text                                 # whose statistic, and where
    ours: Text                                   # platbench's own test beside it


class CostHorizon(_Strict):
    """The hours in each of the study's cost units, as the study computed them (Nyckel's month is $4/h → $2,922:
    730.5 h), beside platbench's (a 730 h month)."""
    hours: dict[Literal["hour", "day", "month", "year"], float]
    what: Text


class Local(_Strict):
    """The small version this machine runs (bundled digits, a short ladder, few epochs)."""
    models: list[Key] = Field(default_factory=list)          # empty: the recipe's
    ladder: list[int] = Field(default_factory=list)
    epochs: int = Field(ge=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    requests_scale: float = Field(gt=0, le=1, default=1.0)   # the request plans' counts × this
    batch_images: Optional[int] = Field(default=None, ge=1)  # the small version's batch unit (None: the study's)
    # --hp settings of the small version only, over the recipe's (e.g. a smaller batch: a short run on the
    # digits' 1,442 images makes a handful of steps at a preset's batch size and stays at chance), and per model
    # over those (e.g. its lr at that batch)
    hp: dict[str, str] = Field(default_factory=dict)
    model_hp: dict[Key, dict[str, str]] = Field(default_factory=dict)


class Published(_Strict):
    """One figure the study published, attributed."""
    quantity: Key
    platform: Text                               # as the study names it (or the model, for a model table)
    value: float = Field(allow_inf_nan=False)
    stat: Literal["value", "mean", "median"] = "value"   # which statistic of the study's values it is
    spread: Optional[float] = None               # ± as published (the study's standard deviation)
    upper: Optional[float] = None                # a range's upper end (Azure's autoscaling day)
    n: Optional[int] = None                      # values behind it, when the study says
    section: Text                                # where in the study: section, table, sentence
    model: Optional[Text] = None                 # the model row it belongs to (pareto table)
    measurable: bool = True                      # can platbench measure this quantity here at all
    why_not: Optional[Text] = None               # when not: why
    differs: Optional[Text] = None               # what still differs from platbench's run of it, one line

    @model_validator(mode="after")
    def _why(self):
        if not self.measurable and not self.why_not:
            raise ValueError("a figure platbench cannot measure says why (why_not)")
        return self


class Unmeasured(_Strict):
    """A figure (or kind of figure) of the study that has no row: what, and why it cannot be measured here."""
    what: Text
    why: Text


class Protocol(_Strict):
    version: int = Field(strict=True, ge=1, le=1)
    study: Key
    title: Text
    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")]
    by: Text
    published_on: Optional[dt.date] = None
    date_note: Optional[Text] = None
    reference: Text                              # the copy in ../shared/references/ the figures were checked against
    theirs: dict[Literal["dataset", "model", "hardware"], Text]   # what they used
    # the study's platforms (or models) → the platbench platform for it, None where platbench has none
    platforms: dict[Text, Optional[Key]] = Field(default_factory=dict)
    recipe: Recipe
    ladder: list[int] = Field(default_factory=list)               # images per class, nested
    validation: Optional[Text] = None
    requests: list[RequestPlan] = Field(default_factory=list)
    # this machine's deployment targets for the request plans (TARGETS), each measured apart
    targets: list[TargetName] = Field(default_factory=lambda: ["torch-cpu"], min_length=1)
    batch_unit: Optional[BatchUnit] = None
    statistic: Optional[Statistic] = None
    cost_horizon: Optional[CostHorizon] = None
    local: Local
    not_built: list[Text] = Field(default_factory=list)         # pieces of the protocol platbench cannot run yet
    unmeasured: list[Unmeasured] = Field(default_factory=list)
    figures: list[Published] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self):
        if self.published_on is None and self.date_note is None:
            raise ValueError("no published_on: say why in date_note (never guess a date)")
        unknown = sorted({f.quantity for f in self.figures} - set(QUANTITIES))
        if unknown:
            raise ValueError(f"unknown quantity {', '.join(unknown)}; known: {', '.join(QUANTITIES)}")
        if len(set(self.targets)) != len(self.targets):
            raise ValueError("targets must differ")
        ids = [p.id for p in self.requests]
        if len(set(ids)) != len(ids):
            raise ValueError("request plan ids must differ")
        return self

    def plan(self, id_: str) -> Optional[RequestPlan]:
        return next((p for p in self.requests if p.id == id_), None)

    @property
    def when(self) -> str:
        return self.published_on.isoformat() if self.published_on else "undated"


names = study_names  # the shipped protocols' names, or PLATBENCH_STUDIES' (platforms/reproduce/__init__.py)


def load(study: str) -> Protocol:
    """The protocol of `study`; a UserError in one line for an unknown study or a broken file."""
    return _load(study, studies_dir())


@lru_cache(maxsize=None)
def _load(study: str, folder: Path) -> Protocol:
    path = folder / f"{study}.yaml"
    if not path.is_file():
        raise UserError(f"unknown study {study!r}; choose one of: {', '.join(names())}")
    try:
        proto = Protocol.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{path}: {where}: {first['msg']} ({exc.error_count()} problem(s))") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not YAML ({' '.join(str(exc).split())[:200]})") from None
    if proto.study != study:
        raise UserError(f"{path}: study is {proto.study!r}, not {study!r} (the file's name)")
    return proto
