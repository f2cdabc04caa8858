"""A run's condition: everything that must be equal for two training runs to be compared.

Runs of one condition differ only by seed (and by the platform, which is what the report compares). The
fields are read from what a run records in MLflow (its tags, params and final metrics, names in
platforms/core/tracking.py), so the condition of a run tracked before it was recorded is the same as
one recorded now. The launcher records it with the run (tracking.TrackedRun.import_outputs): the tag
`platbench.condition` holds its short hash and the params `condition.<field>` its fields."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

from platforms.core.tags import Tag

# hyperparameters the trainer logs as params hp.<name> (trainer/models.py Hyperparameters): those that
# change the job or what it measures; the learning-rate schedule's shape is one field
_HP = "hp."
_SCHEDULE_HP = ("warmup_fraction", "lr_start", "lr_end", "min_steps", "momentum", "weight_decay",
                "label_smoothing", "tta", "translate", "flip", "eval_batch_size")
# the study recipes' options (issue 26), part of the schedule when not at their default, so a run that states
# the default is the same condition as one recorded before the options existed (trainer/models.py's defaults;
# tests/core/test_condition.py checks they agree)
RECIPE_DEFAULTS = {"augment": "flip-translate", "lr_schedule": "warmup-decay", "early_stopping_patience": "0",
                   "pretrained": "0"}


def _none(value) -> Optional[str]:
    return None if value in (None, "", "None") else str(value)


def _num(value) -> Optional[str]:
    """One spelling per number: a param "20" and a metric 20.0 are the same count."""
    value = _none(value)
    if value is None:
        return None
    try:
        f = float(value)
    except ValueError:
        return value
    return str(int(f)) if f.is_integer() else repr(f)


def _image(tags: Mapping) -> Optional[str]:
    """The image's config digest is the same whichever registry a platform pulled it from; a manifest
    digest (REPO@sha256:…) names the repository too, so only its sha256 part counts."""
    if _none(tags.get(Tag.IMAGE_ID)):
        return tags[Tag.IMAGE_ID]
    digest = _none(tags.get(Tag.IMAGE_DIGEST))
    return digest.rsplit("@", 1)[-1] if digest else None


def _software(tags: Mapping) -> Optional[str]:
    found = {k[len(Tag.SOFTWARE):]: v for k, v in tags.items() if k.startswith(Tag.SOFTWARE) and _none(v)}
    return " ".join(f"{k} {v}" for k, v in sorted(found.items())) or None


def _schedule(params: Mapping, metrics: Mapping) -> Optional[str]:
    shape = {k: params[_HP + k] for k in _SCHEDULE_HP if _none(params.get(_HP + k))}
    shape.update({k: params[_HP + k] for k, default in RECIPE_DEFAULTS.items()
                  if _none(params.get(_HP + k)) not in (None, default)})
    steps = _num(metrics.get("optimizer_steps"))
    if steps is not None:
        shape["steps"] = steps
    return " ".join(f"{k} {_num(v)}" for k, v in shape.items()) or None


# field → (label in the report, value from tags, params, metrics); None: the run recorded none
Getter = Callable[[Mapping, Mapping, Mapping], Optional[str]]
FIELDS: dict[str, tuple[str, Getter]] = {
    "dataset": ("dataset fingerprint", lambda t, p, m: _none(t.get(Tag.DATASET_FINGERPRINT))),
    "model": ("model", lambda t, p, m: _none(t.get(Tag.MODEL)) or _none(p.get("model"))),
    "per_class": ("images per class", lambda t, p, m: _num(p.get("per_class"))),
    "epochs": ("epochs", lambda t, p, m: _num(p.get(_HP + "epochs")) or _num(p.get("epochs"))),
    "batch_size": ("batch size", lambda t, p, m: _num(p.get(_HP + "batch_size"))),
    "lr": ("learning rate", lambda t, p, m: _num(p.get(_HP + "lr"))),
    "schedule": ("schedule", lambda t, p, m: _schedule(p, m)),
    "target": ("target accuracy", lambda t, p, m: _num(p.get("target_accuracy"))),
    # a run from before results schema 3 logged no world_size: it was one process (trainer/results.py)
    "devices": ("device count", lambda t, p, m: _num(m.get("world_size")) or "1"),
    "device": ("device kind", lambda t, p, m: _none(t.get(Tag.GPU)) or _none(t.get(Tag.DEVICE))),
    "image": ("image", lambda t, p, m: _image(t)),
    "software": ("software versions", lambda t, p, m: _software(t)),
}


@dataclass(frozen=True)
class Condition:
    values: tuple[tuple[str, Optional[str]], ...]   # (field, value) in FIELDS order

    @property
    def key(self) -> str:
        """Short hash of the fields: equal conditions, equal keys."""
        doc = json.dumps(list(self.values), separators=(",", ":"))
        return hashlib.sha256(doc.encode()).hexdigest()[:12]

    def get(self, name: str) -> Optional[str]:
        return dict(self.values)[name]

    def without(self, *names: str) -> "Condition":
        """The condition less some fields: what must still be equal when those are what is compared
        (images per class along the ablation, device count along scaling)."""
        return Condition(tuple((k, v) for k, v in self.values if k not in names))

    def differing(self, other: "Condition") -> list[str]:
        """The fields whose values differ, in FIELDS order."""
        theirs = dict(other.values)
        return [k for k, v in self.values if theirs.get(k) != v]

    def params(self) -> dict[str, str]:
        """As MLflow params: condition.<field> (fields the run did not record are left out)."""
        return {f"condition.{k}": v for k, v in self.values if v is not None}


def of(tags: Mapping, params: Mapping, metrics: Mapping) -> Condition:
    return Condition(tuple((name, get(tags, params, metrics)) for name, (_, get) in FIELDS.items()))


def label(name: str) -> str:
    return FIELDS[name][0] if name in FIELDS else name


def varying(conditions) -> list[str]:
    """The fields that take more than one value over these conditions, in FIELDS order."""
    conditions = list(conditions)
    return [name for name in FIELDS
            if len({dict(c.values).get(name) for c in conditions}) > 1]
