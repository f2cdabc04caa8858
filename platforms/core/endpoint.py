"""What every platform endpoint shares (docs/design.md, "Platforms"): the interface (check, plan, cost,
deploy, transport for the load tool, attach to an endpoint the user already runs), its cost per
hour/day/month/year, the model archive, names, and the teardown: always called, idempotent, newest first
with Ctrl-C held off (platforms/core/teardown.py), raising once at the end with what is left; a platform
supplies its delete calls and its not-found test. Imports no platform and no cloud SDK."""
from __future__ import annotations

import io
import tarfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional

from platforms.core import pricing
from platforms.core.names import NameRule
from platforms.core.settings import parse_settings
from platforms.core.teardown import delete_newest_first, first_line
from platforms.core.transport import Target, Transport
from platforms.errors import UserError

HOURS = {"hour": 1, "day": 24, "month": 730, "year": 8760}  # 730 h: the month of the clouds' calculators
# SageMaker's and Vertex AI's endpoint names: 1-63 of a-z, A-Z, 0-9 and - (a platform with other limits sets its own)
NAME = NameRule(63)
MODEL_FILES = ("model.pt", "model.json")


# ------------------------------------------------------------------------------------------ cost
@dataclass(frozen=True)
class EndpointCost:
    usd_per_hour: float
    basis: str     # the price table entries used, with source and date
    note: str = ""
    section: str = "endpoint"   # the prices.yaml section priced from: endpoint, or training standing in

    def per(self) -> dict[str, float]:
        return {unit: round(self.usd_per_hour * hours, 4) for unit, hours in HOURS.items()}

    def to_dict(self) -> dict:
        return {"usd_per": self.per(), "basis": self.basis, "note": self.note, "section": self.section}


FALLBACK_LABEL = "training list price standing in: no hosting price in the table"


def endpoint_cost(platform: str, region: str, items: list[tuple[str, int]]) -> Optional[EndpointCost]:
    """Price of keeping the endpoint up (all its instances: `items` carry the counts, applied once in
    pricing.quote), from the `endpoint` section of the platform's prices.yaml: hosting is priced apart
    from training on both clouds (https://aws.amazon.com/sagemaker/pricing/ "Real-Time Inference";
    https://cloud.google.com/vertex-ai/pricing "Prediction and explanation"). Where that section lacks a
    machine, the training list price stands in, and both `note` and `basis` (which is what MLflow records
    as the run's price source) say so."""
    quote = pricing.quote(platform, region, items, section="endpoint")
    if quote is not None:
        return EndpointCost(quote.usd_per_hour, quote.sources)
    quote = pricing.quote(platform, region, items)
    if quote is None:
        return None
    return EndpointCost(quote.usd_per_hour, f"{quote.sources}; {FALLBACK_LABEL}",
                        note=f"no real-time inference price for this machine in platforms/{platform}/prices.yaml "
                             f"(section endpoint); the training list price stands in", section="training")


def model_tarball(model_dir: Path) -> bytes:
    """model.tar.gz with model.pt and model.json at its root: what SageMaker unpacks into /opt/ml/model."""
    from trainer.inference import read_card
    from trainer.errors import ConfigError

    try:
        read_card(model_dir)
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in MODEL_FILES:
            tar.add(Path(model_dir) / name, arcname=name)
    return buf.getvalue()


class Endpoint(ABC):
    """One real-time endpoint on a platform, created by `deploy` and always removed by `teardown`."""

    platform: ClassVar[str]
    settings_model: ClassVar[type]  # the pydantic model of its `--set KEY=VALUE` settings
    name_rule: ClassVar[NameRule] = NAME
    # seconds its teardown is assumed to take until an endpoint run measured one (cost_plan.endpoint_teardown: a
    # budget's watch stops the endpoint this long before the budget, the deletes billing too). No platform
    # publishes how long its deletes take; a teardown that waits on long-running operations (Vertex AI's
    # UndeployModel and DeleteEndpoint, Azure ML's begin_delete poller) is assumed to take this long
    teardown_assumed_s: ClassVar[float] = 600.0
    # the refusal of a name that breaks name_rule, formatted with name=…
    name_refusal: ClassVar[str] = "endpoint name {name!r} is not valid (1–63 of a-z, A-Z, 0-9 and -)"
    by_hand: ClassVar[str] = "delete them by hand"   # what the teardown's error tells the user to do
    # the load test the endpoint is deployed for (a LoadSettings), set before deploy by `platbench endpoint`:
    # a platform whose deployment caps concurrency sizes it from this; None means the load tool's defaults
    load_plan: Any = None

    def __init__(self, settings: dict[str, str]):
        self.cfg = parse_settings(self.settings_model, settings, f"{self.platform} endpoint")
        self.name = self._checked_name(getattr(self.cfg, "name", None))
        self.created: list[tuple[str, str]] = []   # (kind, name) in creation order: teardown deletes these
        self.timings: dict[str, float] = {}

    def tags(self) -> dict[str, str]:
        """What the deployment was made with that a reader of the run needs (recorded as run tags)."""
        return {}

    def _checked_name(self, given: Optional[str]) -> str:
        """The name given (lower-cased where the platform's names are), or a unique one under its rule."""
        rule = self.name_rule
        name = (given.lower() if rule.lower else given) if given else rule.unique("platbench")
        if not rule.fits(name):
            raise UserError(self.name_refusal.format(name=name))
        return name

    @property
    def region(self) -> str:
        return self.cfg.region

    @abstractmethod
    def target(self) -> Target:
        """How the load tool names this endpoint (`PLATFORM:NAME`)."""

    @abstractmethod
    def cost(self) -> Optional[EndpointCost]:
        """Price of keeping it up, from the platform's price table."""

    @abstractmethod
    def plan(self) -> list[str]:
        """The equivalent CLI commands, in order; creates nothing and needs no credentials."""

    @abstractmethod
    def check(self) -> None:
        """Credentials, settings and the bucket, before anything is created."""

    @abstractmethod
    def deploy(self, model_dir: Path, progress=None) -> None:
        """Upload the model, create the endpoint and wait until it serves; records what it created."""

    def teardown(self) -> list[str]:
        """Delete what deploy created, newest first, tolerating 'already gone'; safe to call twice. Returns what
        was deleted; raises once, after every delete was tried, naming what is left."""
        t0 = time.perf_counter()
        try:
            deleted = delete_newest_first(self.created, self.delete, self.already_gone, self.failure)
        finally:
            self.timings["teardown_s"] = time.perf_counter() - t0
            self.released()
        if deleted.failures:
            raise UserError(f"{self.platform} endpoint: could not delete " + "; ".join(deleted.failures)
                            + f" — {self.by_hand} to stop the charges")
        return deleted.done

    @abstractmethod
    def delete(self, kind: str, name: str) -> None:
        """Delete one thing deploy recorded in `created`."""

    @abstractmethod
    def already_gone(self, exc: Exception) -> bool:
        """Whether a delete's exception says the thing does not exist (any more)."""

    def failure(self, exc: Exception) -> str:
        """How a failed delete is named in the teardown's error."""
        return first_line(exc)

    def released(self) -> None:
        """After the deletes (whatever became of them): let go of clients and sessions."""

    @abstractmethod
    def transport(self, concurrency: int, timeout_s: float) -> Transport:
        """The load tool's transport to this endpoint through the platform's SDK."""

    @classmethod
    @abstractmethod
    def attach(cls, name: str, settings: dict[str, str], concurrency: int, timeout_s: float) -> Transport:
        """A transport to an endpoint the user already runs (`platbench load PLATFORM:NAME`)."""
