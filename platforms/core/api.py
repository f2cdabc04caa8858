"""What a platform is (docs/design.md, "Platforms"): its `PlatformSpec` (name, extra, what it lacks and
why, where its launcher, endpoint and object stores live) and the launcher interface every training
platform implements: check, plan, stage, submit, wait, collect, tear down, price.
`platforms/core/launch.py` drives these steps the same way for every platform and is the single writer
of the run's MLflow record. Imports no platform and no cloud SDK."""
from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

from platforms.errors import UserError

REPOSITORY = Path(__file__).resolve().parents[2]  # where docs/ lives in a checkout


class Feature(str, enum.Enum):
    GPU = "gpu"
    SPOT = "spot"                    # preemptible capacity with checkpoint/resume
    MULTI_NODE = "multi-node"
    ENDPOINTS = "endpoints"          # managed real-time inference endpoints
    BILLING = "billing"              # a price per second for the compute used
    REMOTE_STORAGE = "remote-storage"  # data is staged into the platform's object storage


class Kind(str, enum.Enum):
    """What a platform does with a job (docs/design.md, "Platforms")."""

    TRAINING = "training"  # runs our trainer image; launcher: a Platform (below)
    SERVICE = "service"    # an AutoML service that trains a model of its own on our labelled images;
    #                        launcher: a platforms.core.service.Service


# what every AutoML service lacks, and why (Kind.SERVICE specs start their `lacks` from it)
SERVICE_LACKS = {
    Feature.GPU: "the service picks its own training and serving hardware",
    Feature.SPOT: "no spot or preemptible training",
    Feature.MULTI_NODE: "the service decides how training is spread",
}


@dataclass(frozen=True)
class Cloud:
    """A cloud provider that several platforms stage into, find credentials for and push images to
    (docs/design.md, "The cloud layer"), declared in `platforms/clouds/<name>/__init__.py` without importing
    its SDK. A platform names it once (`PlatformSpec(cloud=aws.CLOUD)`) and gets its stores, credential
    lookup, image login, SDK modules and extra. Refs are "module:attribute" inside `package`."""

    name: str                           # "aws"
    package: str                        # "platforms.clouds.aws"
    extra: str                          # pip install 'platbench[aws]' brings sdk_modules
    sdk_modules: tuple[str, ...]        # what its stores and logins import
    stores: dict                        # URI scheme → "s3:S3Store" (core.store.ObjectStore)
    credentials: str = "credentials:find"
    image_login: Optional[str] = "image_login:login"  # (settings, dry_run, who) → platforms.image.push.Login

    def ref(self, ref: str) -> str:
        """A ref of this cloud as an absolute one, loadable from any platform's spec."""
        return f"{self.package}.{ref}"


@dataclass(frozen=True)
class PlatformSpec:
    """Everything the registry, the CLI and the shared features know about a platform, declared in its
    package's `__init__.py` (`SPEC = PlatformSpec(name=..., ...)`) without importing its SDK or its code.

    launcher / endpoint / stores / credentials / image_login name "module:attribute", relative to the
    package (absolute when the module is dotted), imported only when used. `lacks` is the one table of
    missing features (feature → why): the CLI answers from it and dispatch refuses from it, so an endpoint
    exists exactly when ENDPOINTS is not lacked, and object stores exactly when REMOTE_STORAGE is not.

    Defaults by convention (what the common case leaves out): `package` is `platforms.<name>`; `cloud`
    gives its credential lookup and SDK modules to any platform, and its stores and image login to a
    training platform (a service trains on its own, not from our image, and its uploads are not a
    staging the transfer benchmark measures); `credentials` is "credentials:find" when the package has
    a credentials.py; `extra` is the name when anything must be installed; `guide` is
    docs/first-run-<name>.md when that file exists."""

    name: str
    title: str
    launcher: str                                     # "train:SageMakerPlatform"
    lacks: dict = field(default_factory=dict)         # Feature → why
    package: Optional[str] = None                     # default platforms.<name>; a third-party one gives its own
    cloud: Optional[Cloud] = None                     # platforms/clouds/<name>: stores, credentials, image login
    extra: Optional[str] = None                       # pip install 'platbench[extra]' brings its SDK
    sdk_modules: tuple[str, ...] = ()                 # what must import for the launcher to work (the cloud's too)
    endpoint: Optional[str] = None                    # "endpoint:SageMakerEndpoint" (core.endpoint.Endpoint)
    stores: dict = field(default_factory=dict)        # URI scheme → "storage:VolumeStore" (core.store.ObjectStore)
    credentials: Optional[str] = None                 # "credentials:find" → (found, where); no network calls
    guide: Optional[str] = None                       # the first-real-run guide in docs/, for `platbench platforms`
    image_login: Optional[str] = None                 # → platforms.image.push.Login (`platbench image push`)
    kind: Kind = Kind.TRAINING
    not_measurable: Optional[str] = None              # why no run can be measured at all (listed, never launched)
    # the trainer runs inside platbench's own process on this machine: no image, no --set settings, this
    # machine's devices; the reference every other platform is compared with, so listed first
    in_process: bool = False

    def __post_init__(self):
        def default(name, value):  # the spec is frozen: conventions fill its fields once, here
            object.__setattr__(self, name, value)

        if self.package is None:
            default("package", f"platforms.{self.name}")
        cloud = self.cloud
        if cloud is not None:
            default("sdk_modules", tuple(dict.fromkeys(cloud.sdk_modules + self.sdk_modules)))
            if self.credentials is None:
                default("credentials", cloud.ref(cloud.credentials))
            if self.kind == Kind.TRAINING:
                default("stores", {s: cloud.ref(r) for s, r in cloud.stores.items()} | self.stores)
                if self.image_login is None and cloud.image_login:
                    default("image_login", cloud.ref(cloud.image_login))
        if self.credentials is None and self._has("credentials.py"):
            default("credentials", "credentials:find")
        if self.extra is None and self.sdk_modules:
            default("extra", self.name)
        if self.guide is None and (REPOSITORY / "docs" / f"first-run-{self.name}.md").is_file():
            default("guide", f"docs/first-run-{self.name}.md")
        if (self.endpoint is not None) == (Feature.ENDPOINTS in self.lacks):
            raise ValueError(f"platform {self.name}: give an endpoint exactly when ENDPOINTS is not in lacks")
        # a service uploads to its cloud's store (platforms/clouds) but declares none as its own
        if self.kind == Kind.TRAINING and bool(self.stores) == (Feature.REMOTE_STORAGE in self.lacks):
            raise ValueError(f"platform {self.name}: give object stores exactly when REMOTE_STORAGE is not in lacks")

    def _has(self, filename: str) -> bool:
        """Whether the package's folder holds `filename`, found without importing the package (which may
        be the one being imported right now)."""
        import importlib.util

        try:
            found = importlib.util.find_spec(self.package)
        except (ImportError, ValueError):
            return False
        return bool(found and found.submodule_search_locations) and any(
            (Path(p) / filename).is_file() for p in found.submodule_search_locations)

    def load(self, ref: str) -> Any:
        """"module:attr" inside this platform's package (or a dotted module path), imported now. The image
        login comes bound to this platform: a cloud's login serves several, its messages name this one."""
        import functools
        import importlib

        module, _, attr = ref.partition(":")
        found = getattr(importlib.import_module(module if "." in module else f"{self.package}.{module}"), attr)
        return functools.partial(found, who=f"{self.name} registry") if ref == self.image_login else found

    @property
    def directory(self) -> Path:
        import importlib

        return Path(importlib.import_module(self.package).__file__).parent

    def login(self, settings: dict[str, str], dry_run: bool = False) -> Any:
        """`platbench image push <name>`: the login to the registry this platform pulls images from."""
        return self.load(self.image_login)(settings, dry_run=dry_run)

    def require(self, feature: Feature) -> None:
        if feature in self.lacks:
            raise UserError(f"{self.name} lacks {feature.value}: {self.lacks[feature]}")

    def endpoint_class(self) -> Any:
        """Its endpoint class, or one line saying why it has none."""
        self.require(Feature.ENDPOINTS)
        return self.load(self.endpoint)


@dataclass
class Job:
    """What the user asked for, the same for every platform."""

    data: Path
    out: Path
    model: str = "small"
    epochs: Optional[int] = None
    per_class: Optional[int] = None
    seed: int = 0
    target_accuracy: Optional[float] = None
    checkpoint_dir: Optional[Path] = None
    hyperparameters: dict[str, str] = field(default_factory=dict)  # trainer flags beyond the common ones
    settings: dict[str, str] = field(default_factory=dict)  # platform-specific (--set KEY=VALUE)
    devices: int = 1   # data-parallel processes (one device each) per node: the trainer's --devices
    nodes: int = 1     # machines; a platform lacking MULTI_NODE refuses more than one
    device: Optional[str] = None  # the trainer's --device: "cuda" once on_hardware() saw a GPU; None: its auto

    def on_hardware(self, gpus: Optional[int]) -> None:
        """A launcher tells the job how many GPUs its machine has (instance type, VM size, preset), once known.
        With a GPU the trainer runs with --device cuda, which fails in one line where CUDA is not usable (no
        driver, one too old for the image's torch) instead of training on the CPU at a GPU's price (issue 24
        item 9); without one (or not known) the trainer's `auto`."""
        self.device = "cuda" if gpus else None

    def trainer_hyperparameters(self) -> dict[str, str]:
        """The job's trainer flags as strings (the SageMaker hyperparameters.json shape)."""
        hp = {"model": self.model, "seed": str(self.seed)}
        if self.device:
            hp["device"] = self.device
        if self.devices != 1:
            hp["devices"] = str(self.devices)
        for key, value in (("epochs", self.epochs), ("per_class", self.per_class),
                           ("target_accuracy", self.target_accuracy)):
            if value is not None:
                hp[key] = str(value)
        hp.update(self.hyperparameters)
        return hp

    def trainer_args(self) -> list[str]:
        args: list[str] = []
        for key, value in self.trainer_hyperparameters().items():
            args += ["--" + key.replace("_", "-"), value]
        return args


@dataclass
class PlanStep:
    title: str
    command: Optional[str] = None  # the equivalent CLI command a user could type


def render_plan(head: list[str], steps: list[PlanStep], lacks: dict, needs: list[str]) -> str:
    """A dry run as printed, for either kind of platform: header lines, numbered steps with their commands,
    what the platform lacks and what a real launch still needs."""
    lines = list(head)
    for i, step in enumerate(steps, 1):
        lines.append(f"{i:2d}. {step.title}")
        if step.command:
            lines.append(f"      $ {step.command}")
    if lacks:
        lines.append("Not available on this platform: " + "; ".join(f"{f.value} ({why})" for f, why in lacks.items()))
    if needs:
        lines.append("A real launch still needs: " + "; ".join(needs))
    return "\n".join(lines)


@dataclass
class Outcome:
    """What `wait` reports back: how the job ended and the platform-side figures for tracking."""

    status: str  # finished | preempted | failed | killed
    output_dir: Optional[Path] = None
    phases: dict[str, float] = field(default_factory=dict)  # phase → seconds (queued, provisioning, …)
    billed_seconds: Optional[float] = None
    cost_usd: Optional[float] = None           # billed seconds × list price (platforms/core/pricing.py)
    list_estimate_usd: Optional[float] = None  # the run's wall seconds on the instance × list price
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    message: str = ""


class Platform(ABC):
    spec: ClassVar[PlatformSpec]   # name, title and the lacks table come from the platform's SPEC
    name: ClassVar[str]
    title: ClassVar[str]
    lacks: ClassVar[dict[Feature, str]] = {}  # feature → why, stated up front instead of failing late

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "spec" in cls.__dict__:
            cls.name, cls.title, cls.lacks = cls.spec.name, cls.spec.title, dict(cls.spec.lacks)

    settings_model: ClassVar[Optional[type]] = None  # the pydantic model of its `--set KEY=VALUE` settings
    # whether teardown() is also called when stage() or submit() failed (handle None): a platform whose
    # staging creates something outside the job (a bucket prefix, a cluster) cleans it up then too
    teardown_without_job: ClassVar[bool] = False

    def __init__(self, settings: dict[str, str] | None = None):
        self.settings = dict(settings or {})
        self.cfg = None

    def parsed(self):
        """The `--set` settings through `settings_model`, once; a bad one is one line naming the platform."""
        if self.cfg is None:
            from platforms.core.settings import parse_settings

            self.cfg = parse_settings(self.settings_model, self.settings, self.name)
        return self.cfg

    def require(self, feature: Feature) -> None:
        self.spec.require(feature)

    def check(self, job: Job) -> None:
        """Validate everything that can be validated before anything is created or uploaded."""

    def preflight(self, job: Job) -> list[str]:
        """For `--dry-run`: validate the settings and the job offline (no credentials, no network, no SDK
        call; a UserError for what is wrong) and return what a real launch would still need that is
        missing here (credentials, a bucket, an image …), each as one short line."""
        return []

    def run_tags(self, job: Job) -> dict[str, str]:
        """Tags known before the run starts (region, instance type, image …); called after `check`."""
        return {}

    @abstractmethod
    def plan(self, job: Job) -> list[PlanStep]:
        """The exact steps, with equivalent CLI commands; creates nothing (`--dry-run`)."""

    def stage(self, job: Job) -> dict[str, Any]:
        """Put the dataset where the job will read it; returns figures to track (upload s/MiB, …)."""
        return {}

    @abstractmethod
    def submit(self, job: Job, staged: dict[str, Any]) -> Any:
        """Start the job; returns the platform's handle for it."""

    @abstractmethod
    def wait(self, handle: Any, progress: Any) -> Outcome:
        """Block until the job ends, reporting phases and epochs to `progress` (platforms.core.progress)."""

    @abstractmethod
    def collect(self, handle: Any, outcome: Outcome, dest: Path) -> Path:
        """Bring the trainer's outputs (results.json, metrics.jsonl, train.log, model/) into `dest`."""

    def teardown(self, handle: Any) -> None:
        """Remove what the run created; called always, also on error or Ctrl-C; with handle None after a
        failed stage()/submit() when the platform declares teardown_without_job."""

    def price_per_hour(self) -> Optional[float]:
        return None
