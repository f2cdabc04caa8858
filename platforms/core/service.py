"""The second kind of platform (docs/design.md, "Platforms"): a managed AutoML service that takes our labelled
images and trains a model of its own choosing. No image of ours runs there, so instead of the launcher's
stage → submit → wait → collect, a service implements: upload the data in its own format, train (timed by
the service's own timestamps), deploy, answer predictions through its SDK (a load-tool transport), tear
everything down, and price training and serving. `platforms/core/service_launch.py` drives these steps
the same way for every service (`platbench launch SERVICE`) and evaluates the deployed model on the whole test set.

What is shared here: the service's view of the dataset (the same nested `--per-class` subsets the trainer
uses, trainer/data/subset.py, with the same 80/20 train/validation cut, or all of those images where the
service cross-validates), the checks every service makes before anything is created (too few images per
label, too few labels, unsupported formats, image sizes, options that do not apply), images smaller than a
service's minimum upscaled (before upload and in every request: `fit_to_minimum`), the settings every service shares
(the load test's), and the cost of a run. Imports no platform and no cloud SDK."""
from __future__ import annotations

import io
import json
import math
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Optional

from pydantic import BaseModel, ConfigDict, Field

from platforms.core.api import Feature, Job, PlanStep, PlatformSpec
from platforms.core.endpoint import HOURS
from platforms.core.teardown import delete_newest_first, first_line
from platforms.core.transport import Reply, Target, Transport
from platforms.errors import UserError

# image formats by their first bytes: what a service accepts is checked on content, not on the file name
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff"}
SPLIT_80_20 = "80/20 train/validation per class (trainer/data/subset.py)"
SPLIT_ALL = "all selected images; the service cross-validates on them itself"


def image_format(path: Path) -> Optional[str]:
    head = Path(path).read_bytes()[:8]
    return next((name for name, magic in MAGIC.items() if head.startswith(magic)), None)


def image_dimensions(path: Path) -> tuple[int, int]:
    """(width, height) from the image's header."""
    from PIL import Image

    with Image.open(path) as img:
        return img.size


def upscaled_size(size: tuple[int, int], min_side: int) -> tuple[int, int]:
    """The size with both sides at least min_side, aspect ratio kept (unchanged where already large enough)."""
    factor = max(1.0, min_side / min(size))
    return math.ceil(size[0] * factor), math.ceil(size[1] * factor)


def fit_to_minimum(data: bytes, min_side: int) -> bytes:
    """The image's bytes, upscaled (bicubic, same format; JPEG at quality 95) where a side is under min_side:
    a 32×32 CIFAR-10 image becomes 64×64 for a service that refuses anything smaller. Unchanged otherwise."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError):
        return data  # not an image: the service judges it
    with img:
        size = upscaled_size(img.size, min_side)
        if size == img.size:
            return data
        fmt = img.format
        out = io.BytesIO()
        img.resize(size, Image.Resampling.BICUBIC).save(out, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        return out.getvalue()


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    label: str

    @property
    def size(self) -> int:
        return self.path.stat().st_size


@dataclass
class ServiceData:
    """The images a service gets: `train` and `val` (val empty where the service cross-validates), and the
    whole `test` set, which the deployed model is evaluated on and the service never sees."""

    root: Path
    classes: list[str]
    train: list[LabelledImage]
    val: list[LabelledImage]
    test: list[LabelledImage]
    split: str
    sent_bytes: Optional[int] = None   # what the upload sent, where that differs from the files (upscaled)

    @property
    def uploaded(self) -> list[LabelledImage]:
        return self.train + self.val

    def upload_bytes(self) -> int:
        return self.sent_bytes if self.sent_bytes is not None else sum(x.size for x in self.uploaded)

    def per_label(self) -> dict[str, int]:
        counts = {c: 0 for c in self.classes}
        for x in self.uploaded:
            counts[x.label] += 1
        return counts


def prepare(job: Job, cross_validates: bool) -> ServiceData:
    """The job's dataset as a service gets it. `--per-class N` takes the trainer's own nested, seeded subset
    (the 5 inside the 20 …) and its 80/20 cut; without it every training image, cut 80/20 per class by the
    same rule. A service that cross-validates gets train and validation together."""
    import numpy as np

    from trainer.data import subset
    from trainer.data.layout import detect_format, scan_folder
    from trainer.errors import DataError

    try:
        if detect_format(Path(job.data)) != "folder":
            raise UserError(f"{job.data}: a service takes image files: convert the CIFAR-10 batches first "
                            "(platbench data prepare cifar10 --source DIR --out FOLDER)")
        ds = scan_folder(Path(job.data))
        labels = np.asarray(ds.train.labels)
        if job.per_class is not None:
            tr, va = subset.per_class_split(labels, ds.classes, job.per_class, job.seed)
        else:
            tr, va = subset.all_split(labels, ds.classes, job.seed)  # the trainer's own cut, nested
    except DataError as exc:
        raise UserError(str(exc)) from None

    def pick(idx) -> list[LabelledImage]:
        return [LabelledImage(ds.train.files[i], ds.classes[ds.train.labels[i]]) for i in idx]

    train, val = pick(tr), pick(va)
    if cross_validates:
        train, val = sorted(train + val, key=lambda x: x.path), []
    test = [LabelledImage(f, ds.classes[y]) for f, y in zip(ds.test.files, ds.test.labels)]
    return ServiceData(Path(job.data), ds.classes, train, val, test, SPLIT_ALL if cross_validates else SPLIT_80_20)


class ServiceSettings(BaseModel):
    """`--set KEY=VALUE` every service takes: how the deployed model is measured. The defaults are the study's
    figure: 1,000 requests by 10 concurrent clients."""

    model_config = ConfigDict(extra="forbid")

    requests: int = Field(1000, ge=1, le=100_000)     # measured load-test requests
    concurrency: int = Field(10, ge=1, le=256)        # closed-loop clients (load test and test-set evaluation)
    warmup: int = Field(20, ge=0, le=10_000)
    retries: int = Field(2, ge=0, le=10)              # the load tool's backoff retries (resets, 429, 5xx gateway)
    timeout: float = Field(60.0, gt=0, le=600)        # seconds per request
    poll_seconds: float = Field(30.0, gt=0, le=600)   # how often training and deployment states are read
    max_train_hours: float = Field(24.0, gt=0, le=168)  # give up (and delete everything) after this


@dataclass
class Trained:
    """Training as the service reports it: its own start and end timestamps (ISO 8601, UTC)."""

    seconds: float
    started: str
    ended: str
    billed_seconds: Optional[float] = None
    source: str = ""          # which fields of which API call the times come from
    service_metrics: dict[str, float] = field(default_factory=dict)  # the service's own evaluation (F1 …)


@dataclass
class ServiceCost:
    """What a run costs on the service's list prices (its prices.yaml): training, and serving either per hour
    the model is deployed or per request."""

    training_usd: Optional[float]
    endpoint_usd_per_hour: Optional[float]
    usd_per_request: Optional[float]
    basis: str                # the price entries used, with source, date and status

    def per(self) -> dict[str, float]:
        if self.endpoint_usd_per_hour is None:
            return {}
        return {unit: round(self.endpoint_usd_per_hour * hours, 4) for unit, hours in HOURS.items()}

    def metrics(self, deployed_seconds: Optional[float], requests: int) -> dict[str, Optional[float]]:
        """cost_usd: training + serving for what this run used (the seconds the model was deployed, or the
        requests it answered)."""
        serving = None
        if self.endpoint_usd_per_hour is not None and deployed_seconds is not None:
            serving = self.endpoint_usd_per_hour * deployed_seconds / 3600
        elif self.usd_per_request is not None:
            serving = self.usd_per_request * requests
        total = None if self.training_usd is None and serving is None else (self.training_usd or 0) + (serving or 0)
        return {"cost_training_usd": self.training_usd, "cost_serving_usd": serving, "cost_usd": total,
                "usd_per_request": self.usd_per_request,
                **{f"endpoint_usd_per_{unit}": v for unit, v in self.per().items()}}


class Service(ABC):
    """One AutoML service. `platforms/core/service_launch.py` calls, in order: check, upload, train, deploy, then
    the transport (evaluation and load test), and teardown always, also on error or Ctrl-C."""

    spec: ClassVar[PlatformSpec]
    name: ClassVar[str]
    title: ClassVar[str]
    lacks: ClassVar[dict[Feature, str]] = {}
    settings_model: ClassVar[type] = ServiceSettings
    cross_validates: ClassVar[bool] = False
    min_labels: ClassVar[int] = 2            # the documented minimums, refused before anything is created
    min_per_label: ClassVar[int] = 1
    formats: ClassVar[tuple[str, ...]] = ("png", "jpeg")
    limits_source: ClassVar[str] = ""        # the page documenting them
    # documented image sizes, pixels a side: smaller images are upscaled to min_side (fit_to_minimum) before
    # upload and in every request, larger than max_side refused
    min_side: ClassVar[int] = 0
    max_side: ClassVar[Optional[int]] = None
    top_k_given: ClassVar[bool] = True       # whether a prediction carries more than the best label

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "spec" in cls.__dict__:
            cls.name, cls.title, cls.lacks = cls.spec.name, cls.spec.title, dict(cls.spec.lacks)

    def __init__(self, settings: dict[str, str] | None = None):
        self.settings = dict(settings or {})
        self.cfg = None
        self.created: list[tuple[str, str]] = []   # (kind, id) in creation order: teardown deletes these
        self.sent_bytes: Optional[int] = None      # what upload_images sent, and how many images it upscaled
        self.upscaled = 0

    def parsed(self):
        if self.cfg is None:
            from platforms.core.settings import parse_settings

            self.cfg = parse_settings(self.settings_model, self.settings, self.name)
        return self.cfg

    # ------------------------------------------------------------------ before anything is created
    def refuse_trainer_options(self, job: Job) -> None:
        """The service picks its model and training: the trainer's options would be silently ignored."""
        from dataclasses import fields

        default_model = next(f.default for f in fields(Job) if f.name == "model")
        # (a checkpoint folder is not refused: a sweep gives every cell one; a service run has nothing to
        # resume, since a stopped run deletes what it created and starts over)
        given = [opt for opt, value in (("--epochs", job.epochs), ("--target-accuracy", job.target_accuracy),
                                        ("--hp", job.hyperparameters or None),
                                        ("--devices", getattr(job, "devices", 1) if getattr(job, "devices", 1) != 1 else None),
                                        ("--nodes", getattr(job, "nodes", 1) if getattr(job, "nodes", 1) != 1 else None))
                 if value is not None]
        if job.model != default_model:
            given.insert(0, "--model")
        if given:
            raise UserError(f"{self.name} trains a model of its own choosing: {', '.join(given)} do(es) not apply")

    def check_data(self, data: ServiceData) -> None:
        """The service's documented minimums and formats, on the images it would get."""
        counts = data.per_label()
        if len(counts) < self.min_labels:
            raise UserError(f"{self.name} needs at least {self.min_labels} labels, the data has {len(counts)} "
                            f"({self.limits_source})")
        few = {label: n for label, n in counts.items() if n < self.min_per_label}
        if few:
            label, n = next(iter(few.items()))
            raise UserError(f"{self.name} needs at least {self.min_per_label} images per label; {label!r} has {n}"
                            f"{f' (and {len(few) - 1} more labels)' if len(few) > 1 else ''}: use a larger "
                            f"--per-class ({self.limits_source})")
        for x in data.uploaded + data.test:
            fmt = image_format(x.path)
            if fmt not in self.formats:
                raise UserError(f"{self.name} takes {' and '.join(f.upper() for f in self.formats)} images only; "
                                f"{x.path} is {fmt.upper() if fmt else 'another format'} ({self.limits_source})")
        if self.max_side:  # read from each header; an image under min_side counts at its upscaled size
            for x in data.uploaded + data.test:
                w, h = upscaled_size(image_dimensions(x.path), self.min_side or 1)
                if max(w, h) > self.max_side:
                    raise UserError(f"{self.name} takes images of at most {self.max_side}×{self.max_side} px; {x.path} "
                                    f"is {w}×{h} px as sent ({self.limits_source})")

    def upscaling(self) -> str:
        """What the run does to small images, for the plan and the run's tags ('' where nothing is)."""
        return (f"images under {self.min_side}×{self.min_side} px are upscaled (bicubic, aspect kept) to "
                f"{self.min_side} px on the short side before upload and in every request, the service's minimum "
                f"({self.limits_source})") if self.min_side else ""

    def check(self, job: Job, data: ServiceData) -> None:
        """Settings, options, data and credentials: everything that can be refused before anything exists."""
        self.parsed()
        self.refuse_trainer_options(job)
        self.check_data(data)

    def preflight(self, job: Job) -> list[str]:
        """For --dry-run: offline; what a real launch still needs."""
        self.parsed()
        self.refuse_trainer_options(job)
        return []

    def run_tags(self, job: Job) -> dict[str, str]:
        return {}

    @abstractmethod
    def plan(self, job: Job) -> list[PlanStep]:
        """The steps with the equivalent CLI (or curl) commands; creates nothing."""

    # ------------------------------------------------------------------ the run
    @abstractmethod
    def upload(self, data: ServiceData, say) -> dict[str, Any]:
        """Put the train/validation images where the service reads them, in its format; returns figures
        (numbers become metrics, strings tags). The caller times it."""

    @abstractmethod
    def train(self, data: ServiceData, say) -> Trained:
        """Start training and wait until it ends; the time is the service's own."""

    @abstractmethod
    def deploy(self, say) -> None:
        """Make the trained model answer predictions; returns when it does."""

    @abstractmethod
    def target(self) -> Target:
        """How the run names the deployed model (kind = the service's name)."""

    @abstractmethod
    def transport(self, concurrency: int, timeout_s: float) -> Transport:
        """Predictions through the service's SDK, in the load tool's shape: a 2xx Reply whose JSON body is
        {"predictions": [{"class", "probability", "top": [[label, probability], …]}]} (best first)."""

    def teardown(self) -> list[str]:
        """Delete what the run created, newest first; safe to call twice. One failure does not stop the rest:
        it is listed as "KIND NAME: NOT deleted (…)" among what was deleted, which the run prints."""
        deleted = delete_newest_first(self.created, self.delete,
                                      why=lambda exc: f"NOT deleted ({type(exc).__name__}: {first_line(exc)})")
        return deleted.done + deleted.failures

    @abstractmethod
    def delete(self, kind: str, name: str) -> Optional[Iterable[str]]:
        """Delete one recorded (kind, name), with whatever it holds (found again by name, so that a create
        interrupted before it answered is found too); yields (or returns) what was deleted, one line each."""

    @abstractmethod
    def cost(self, trained: Optional[Trained]) -> Optional[ServiceCost]:
        """Prices from the service's prices.yaml."""

    # ------------------------------------------------------------------ shared by the steps
    def upload_images(self, store, prefix: str, kind: str, splits: dict[str, list[LabelledImage]],
                      workers: int) -> dict[str, list[str]]:
        """Each split's images into an object store (platforms/core/store.py) as PREFIX/images/SPLIT/LABEL/
        NNNNNN.ext, `workers` uploads at a time, PREFIX recorded as `kind` first (a failed upload is deleted
        too); returns each split's keys, in the images' order (what a manifest names). Where the service has a
        min_side, images under it are sent upscaled; `self.upscaled` and `self.sent_bytes` say what was sent."""
        self.created.append((kind, prefix))
        keys = {split: [f"{prefix}/images/{split}/{x.label}/{i:06d}{x.path.suffix.lower()}"
                        for i, x in enumerate(items)] for split, items in splits.items()}
        files = [(key, x.path) for split, items in splits.items() for key, x in zip(keys[split], items)]

        def put(key: str, path: Path) -> tuple[int, bool]:
            if not self.min_side:
                store.put_file(key, path)
                return path.stat().st_size, False
            raw = path.read_bytes()
            body = fit_to_minimum(raw, self.min_side)
            store.put_bytes(key, body)
            return len(body), body is not raw

        with ThreadPoolExecutor(workers) as pool:
            sent = list(pool.map(lambda kp: put(*kp), files))
        self.sent_bytes, self.upscaled = sum(n for n, _ in sent), sum(up for _, up in sent)
        return keys


def predictions(ranked: list[tuple[str, float]], server: str) -> Reply:
    """The Reply every service transport gives: one prediction, labels best first with probabilities 0–1."""
    ranked = sorted(ranked, key=lambda t: -t[1])
    pred = {"class": ranked[0][0] if ranked else None, "probability": ranked[0][1] if ranked else None,
            "top": [[label, p] for label, p in ranked]}
    return Reply(200, json.dumps({"predictions": [pred]}).encode(), {"server": server})
