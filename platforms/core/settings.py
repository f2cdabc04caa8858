"""What the user types, parsed once for every command and platform: `--set`/`--hp` pairs, a platform's
pydantic settings (errors as one line), the trainer's hyperparameters with the trainer's own types, and
the checks a launcher makes before anything is uploaded."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from platforms.errors import UserError


def parse_pairs(pairs: list[str], option: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{option} takes KEY=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def one_line_validation_error(exc, model: type | None = None) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
    msg = err.get("msg", str(exc)).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        valid = f"; valid: {', '.join(model.model_fields)}" if model is not None else ""
        return f"unknown setting {loc!r}{valid}"
    return f"{loc}: {msg}" if loc else msg


def parse_settings(model: type, settings: dict[str, str], who: str) -> Any:
    """`--set` pairs into the pydantic `model`; an error is one line starting with `who`."""
    from pydantic import ValidationError

    try:
        return model(**settings)
    except ValidationError as exc:
        raise UserError(f"{who}: " + one_line_validation_error(exc, model)) from None


def typed_overrides(overrides: dict) -> dict:
    """--hp values arrive as strings; convert them with the trainer's own flag types and check them against the
    trainer's ranges (trainer/hyperparameters.py), so a cloud job is refused here, not after it started."""
    from trainer.cli import HYPERPARAMETER_FLAGS
    from trainer.errors import ConfigError
    from trainer.hyperparameters import check_ranges

    typed = {}
    for key, value in overrides.items():
        flag = key.replace("_", "-")
        if flag not in HYPERPARAMETER_FLAGS:
            raise UserError(f"unknown hyperparameter {key!r}; known: {', '.join(HYPERPARAMETER_FLAGS)}")
        try:
            typed[key] = HYPERPARAMETER_FLAGS[flag](value)
        except ValueError:
            raise UserError(f"hyperparameter {key}={value!r} is not a {HYPERPARAMETER_FLAGS[flag].__name__}") from None
    try:
        check_ranges(typed)
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    return typed


def validate_job(job) -> None:
    """What the trainer will reject, rejected before anything is uploaded: the model preset, the
    hyperparameters, and the dataset layout."""
    from platforms.core.staging import dataset_files
    from trainer.models import PRESETS

    if job.model not in PRESETS:
        raise UserError(f"unknown model {job.model!r}; choose one of: {', '.join(PRESETS)}")
    typed_overrides(job.hyperparameters)
    dataset_files(Path(job.data))
