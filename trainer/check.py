"""`python -m trainer check RUN_DIR`: does a run directory keep the trainer's output contract?

A compliance check in the spirit of MLPerf's: results.json against its schema, metrics.jsonl line by line,
train.log's metric lines against both, and the figures against each other (per-epoch seconds against train
seconds, time to target against the epochs' accuracies, accuracy against the confusion matrix, the dataset
fingerprint against known datasets, the image digest of container runs). Each problem is one line: file,
what, expected, found. Torch-free, and reads field names from the model classes and `loglines.METRICS`,
so it follows the schema as it changes.

Exit codes of the command: 0 clean, 1 problems (one line each), 2 unusable input (one line)."""
from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ValidationError

from trainer import loglines
from trainer import results as contract

RESULTS, METRICS, LOG = contract.RESULTS_FILE, contract.METRICS_FILE, contract.LOG_FILE

# Tolerances. Figures copied between files as JSON floats survive exactly (repr round-trips), so COPY only
# absorbs float summation; metrics.jsonl rounds seconds to 6 decimals (ROUNDED); per-class accuracy is a
# float32 division on the device (FLOAT32); log lines print 6 significant digits and are compared at that
# precision instead.
COPY = 1e-9
ROUNDED = 1e-6
FLOAT32 = 1e-6

# Datasets whose bytes are fixed, so a run that names one must carry its fingerprint
# (sha256 over relative paths and contents, trainer.data.layout.fingerprint).
# - digits: `platbench data prepare digits` (scikit-learn's bundled images written as PNG). The PNG bytes
#   depend on Pillow's encoder and zlib, pinned by constraints.txt; tests/test_check.py recomputes this
#   entry with the real code and fails if it drifts:
#   .venv/bin/pytest tests/test_check.py -k known_digits_fingerprint
# - CIFAR-10 (torchvision's python batches, or the PNG folder `data prepare cifar10` writes from them) is
#   deliberately absent: the development machines have no network and only a lossy JPEG re-encoding of
#   CIFAR-10, and torchvision publishes md5 sums of the archive and batch files, not the sha256 of their
#   contents this fingerprint is made of. An entry added without computing it from the real files would be
#   a guess; runs on CIFAR-10 get the note "fingerprint not checked: unknown dataset" until someone with
#   the real download adds it (run `python -c "from trainer.data.layout import fingerprint; print(
#   fingerprint(Path('data/cifar10')))"` on the torchvision download and on the prepared PNG folder).


@dataclass(frozen=True)
class KnownDataset:
    format: str
    fingerprint: str
    classes: tuple[str, ...]
    train_count: int  # the whole train split (runs with --per-class use fewer)
    test_count: int


KNOWN_DATASETS: dict[str, KnownDataset] = {
    "digits": KnownDataset(
        format="folder",
        fingerprint="44f98cc7acf922d1c1c69ceab89493dd0baaf027ca46ca80fa23e9193d833fb4",
        classes=tuple(str(i) for i in range(10)),
        train_count=1442,
        test_count=355,
    ),
}

# Platforms whose jobs always run the image (bring-your-own container); a run there needs the digest of the
# image it ran. Their launchers' native local mode is not a container run: pass container=False for it
# (the launcher knows, results.json does not).
CONTAINER_PLATFORMS = ("sagemaker", "vertex", "azureml")
DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")

_METRIC_LINE = re.compile(r"^- [^:]+:")  # what a metric line looks like, before asking whether it parses
_RESUMED = re.compile(r"^Resuming from .* after epoch (\d+)\s*$")


class UnusableInput(ValueError):
    """The path cannot be checked at all (no such folder, no results.json): one line, exit 2."""


@dataclass(frozen=True)
class Problem:
    file: str
    what: str
    expected: str = ""
    found: str = ""
    line: Optional[int] = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.what}"
        if self.expected or self.found:
            text += f": expected {self.expected or 'nothing'}, found {self.found or 'nothing'}"
        return text

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # information, not problems (e.g. fingerprint not checked)

    def add(self, file: str, what: str, expected: Any = "", found: Any = "", line: Optional[int] = None) -> None:
        self.problems.append(Problem(file, _oneline(what), _text(expected), _text(found), line))


def _oneline(text: str) -> str:
    return " ".join(str(text).split())


def _text(value: Any) -> str:
    if isinstance(value, str):
        return _oneline(value)
    if isinstance(value, float):
        return f"{value:.10g}"
    return _oneline(repr(value)) if value is not None else "none"


def _close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------------------------------------- entry points
def check_run_dir(path: Path | str, *, container: Optional[bool] = None) -> list[Problem]:
    """Every problem of a run directory, one per line; [] when it keeps the contract.

    container: whether the run ran in the image (None: inferred from results.json's platform)."""
    return run_checks(path, container=container).problems


def run_checks(path: Path | str, *, container: Optional[bool] = None) -> Report:
    """Problems and notes (information such as "fingerprint not checked"). Raises UnusableInput."""
    run_dir = Path(path)
    if not run_dir.exists():
        raise UnusableInput(f"{run_dir} does not exist")
    if not run_dir.is_dir():
        raise UnusableInput(f"{run_dir} is not a folder (expected a run directory holding {RESULTS})")
    if not (run_dir / RESULTS).is_file():
        raise UnusableInput(f"{run_dir} has no {RESULTS}: not the output of a finished run")
    report = Report()
    results = _load_results(run_dir / RESULTS, report)
    records = _load_metrics(run_dir / METRICS, report)
    log = _read_text(run_dir / LOG, report)
    log_lines = _parse_log(log, report) if log is not None else None
    if results is None:
        return report  # schema problems reported; cross-checks need a valid results.json
    expected_final = _check_results(results, records, report, container)
    if log_lines is not None and records is not None:
        _check_log(log_lines, results, records, expected_final, report)
    return report


# ---------------------------------------------------------------------------------------------- reading
def _read_text(path: Path, report: Report) -> Optional[str]:
    if not path.is_file():
        report.add(path.name, "file missing", "a file", "nothing")
        return None
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        report.add(path.name, "not UTF-8 text", found=f"byte {exc.start}")
    except OSError as exc:
        report.add(path.name, "unreadable", found=exc.strerror or str(exc))
    return None


def _validation_problems(report: Report, file: str, exc: ValidationError, prefix: str = "",
                         line: Optional[int] = None) -> None:
    for err in exc.errors():
        loc = prefix + ".".join(str(p) for p in err.get("loc", ()))
        kind = err.get("type", "")
        if kind == "missing":
            report.add(file, f"{loc}: required field missing", "the field", "nothing", line)
        elif kind == "extra_forbidden":
            report.add(file, f"{loc}: field not in the schema", "no such field",
                       _shorten(err.get("input")), line)
        else:
            report.add(file, f"{loc}: {err.get('msg', 'invalid')}", "a valid value", _shorten(err.get("input")), line)


def _shorten(value: Any, limit: int = 60) -> str:
    text = _oneline(json.dumps(value) if not isinstance(value, str) else repr(value))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _load_results(path: Path, report: Report) -> Optional[contract.Results]:
    text = _read_text(path, report)
    if text is None:
        return None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        report.add(RESULTS, "not valid JSON", "a JSON object", f"{exc.msg} at line {exc.lineno}", exc.lineno)
        return None
    if not isinstance(raw, dict):
        report.add(RESULTS, "not a JSON object", "an object", type(raw).__name__)
        return None
    raw = contract.upgrade(raw)  # schema 2 reads as 3 exactly (one process)
    version = raw.get("schema_version")
    if version != contract.SCHEMA_VERSION:
        # Another version's fields differ wholesale: one line, not one per renamed field.
        report.add(RESULTS, "schema_version (fields not checked against another version's schema)",
                   contract.SCHEMA_VERSION, version)
        return None
    try:
        return contract.Results.model_validate(raw)
    except ValidationError as exc:
        _validation_problems(report, RESULTS, exc)
        return None


def _load_metrics(path: Path, report: Report) -> Optional[list[dict]]:
    """metrics.jsonl: one JSON object per epoch, epochs 1, 2, …, the same keys on every line, numbers only,
    train_seconds cumulative. Returns the records (None when the file cannot be used for cross-checks)."""
    text = _read_text(path, report)
    if text is None:
        return None
    model = getattr(contract, "EpochMetrics", None)  # a schema of its own, if results.py gains one
    records: list[dict] = []
    usable = True
    first_keys: Optional[set] = None
    for n, raw_line in enumerate(text.splitlines(), 1):
        if not raw_line.strip():
            continue
        try:
            rec = json.loads(raw_line)
        except json.JSONDecodeError as exc:
            report.add(METRICS, "not valid JSON", "a JSON object", exc.msg, n)
            usable = False
            continue
        if not isinstance(rec, dict):
            report.add(METRICS, "not a JSON object", "an object", type(rec).__name__, n)
            usable = False
            continue
        if isinstance(model, type) and issubclass(model, BaseModel):
            try:
                model.model_validate(rec)
            except ValidationError as exc:
                _validation_problems(report, METRICS, exc, line=n)
                usable = False
        epoch_no = len(records) + 1
        if rec.get("epoch") != epoch_no or isinstance(rec.get("epoch"), bool):
            report.add(METRICS, "epoch number (lines are epochs 1, 2, … in order)", epoch_no, rec.get("epoch"), n)
            usable = False
        for key in ("epoch_seconds", "train_seconds", "test_accuracy"):
            if key not in rec:
                report.add(METRICS, f"{key} missing", "a number", "nothing", n)
                usable = False
        for key, value in rec.items():
            if not _is_number(value):
                report.add(METRICS, f"{key} is not a finite number", "a number", _shorten(value), n)
                usable = False
            elif (key.endswith("accuracy") and not 0 <= value <= 1) or (key.endswith("seconds") and value < 0):
                report.add(METRICS, f"{key} out of range", "[0, 1]" if key.endswith("accuracy") else "≥ 0", value, n)
        keys = set(rec)
        if first_keys is None:
            first_keys = keys
        elif keys != first_keys:
            report.add(METRICS, "keys differ from the first line's", sorted(first_keys), sorted(keys), n)
        records.append(rec)
    if not records:
        report.add(METRICS, "no epochs", "one line per epoch", "none")
        return None
    if not usable:
        return None
    total = 0.0
    for n, rec in enumerate(records, 1):  # cumulative train_seconds: both figures rounded to 6 decimals
        total += rec["epoch_seconds"]
        if abs(total - rec["train_seconds"]) > ROUNDED * (n + 1):
            report.add(METRICS, f"epoch {n}: train_seconds is not the sum of epoch_seconds so far", total,
                       rec["train_seconds"], n)
            total = rec["train_seconds"]
    return records


# ---------------------------------------------------------------------------------------------- results.json
def _check_agrees(report: Report, name: str, value: Optional[float], witnesses: list[tuple[str, float, float]]
                  ) -> Optional[float]:
    """One line when a results.json figure disagrees with the figures that must equal it (each witness:
    where from, value, tolerance). Returns the value the other files support when it disagrees."""
    if value is None:
        return None
    wrong = [(where, v) for where, v, tol in witnesses if not _close(value, v, tol)]
    if not wrong:
        return None
    groups: list[tuple[float, list[str]]] = []  # witnesses that agree with each other share one figure
    for where, v in wrong:
        same = next((g for g in groups if _close(g[0], v, COPY)), None)
        if same is None:
            groups.append((v, [where]))
        else:
            same[1].append(where)
    report.add(RESULTS, name, " or ".join(f"{_text(v)} ({', '.join(w)})" for v, w in groups), value)
    return wrong[0][1]


# Log metrics whose results.json field is not found by name (see _results_value).
_FIELD_OF = {"optimizer_steps": ("schedule", "steps")}


def _results_value(results: contract.Results, metric: str) -> Any:
    """The results.json figure a final log line prints, by the metric's name: a top-level field of the same
    name, a `seconds` field named by the metric without "seconds" (train_seconds → seconds.train,
    seconds_to_target → seconds.to_target), or an entry of _FIELD_OF."""
    if metric in type(results).model_fields:
        return getattr(results, metric)
    short = re.sub(r"(^seconds_|_seconds$)", "", metric)
    if short != metric and short in type(results.seconds).model_fields:
        return getattr(results.seconds, short)
    obj: Any = results
    for part in _FIELD_OF.get(metric, ("-",)):
        obj = getattr(obj, part, None)
    return obj


def _check_results(results: contract.Results, records: Optional[list[dict]], report: Report,
                   container: Optional[bool]) -> dict[str, float]:
    """Everything about results.json; returns the final figures the log must print (name → value), corrected
    where results.json alone is wrong, so one wrong figure is one line, not one per file."""
    corrected: dict[str, float] = {}
    sec = results.seconds
    last = records[-1] if records else None

    # epochs
    if records is not None and len(records) != results.epochs_completed:
        report.add(RESULTS, "epochs_completed (lines of metrics.jsonl)", len(records), results.epochs_completed)
    if len(sec.per_epoch) != results.epochs_completed:
        report.add(RESULTS, "seconds.per_epoch has one entry per completed epoch", results.epochs_completed,
                   len(sec.per_epoch))

    # per-epoch seconds: against metrics.jsonl entry by entry, and their sum against train seconds
    summed = math.fsum(sec.per_epoch)
    sum_ok = _close(summed, sec.train, ROUNDED * (len(sec.per_epoch) + 1))  # each entry rounded to 6 decimals
    off = [(i, rec["epoch_seconds"], mine) for i, (mine, rec) in enumerate(zip(sec.per_epoch, records or []))
           if not _close(mine, rec["epoch_seconds"], COPY)]
    train_witnesses = []
    if last is not None:
        train_witnesses.append((f"metrics.jsonl epoch {last['epoch']} train_seconds", last["train_seconds"], ROUNDED))
    if off:  # the list is wrong (one line for all its wrong entries), whether or not its sum still matches
        adds = "" if sum_ok else f" (adds up to {_text(summed)}, not seconds.train {_text(sec.train)})"
        report.add(RESULTS, f"seconds.per_epoch{adds}",
                   "; ".join(f"[{i}] {_text(m)}" for i, m, _ in off) + " (metrics.jsonl epoch_seconds)",
                   "; ".join(f"[{i}] {_text(v)}" for i, _, v in off))
    elif not sum_ok and train_witnesses and _close(sec.train, train_witnesses[0][1], ROUNDED):
        report.add(RESULTS, "seconds.per_epoch adds up to", f"{_text(sec.train)} (seconds.train)", summed)
    elif len(sec.per_epoch) == results.epochs_completed:
        train_witnesses.insert(0, ("sum of seconds.per_epoch", summed, ROUNDED * (len(sec.per_epoch) + 1)))
    fixed = _check_agrees(report, "seconds.train", sec.train, train_witnesses)
    if fixed is not None:
        corrected["train_seconds"] = fixed
    train = fixed if fixed is not None else sec.train
    parts = {name: getattr(sec, name) for name in ("data", "train", "eval") if _is_number(getattr(sec, name, None))}
    # phases of one process never overlap; a resumed run's train and eval seconds also cover the earlier
    # process(es), its total only the last one
    if results.resumed_from_epoch is None and math.fsum(parts.values()) > sec.total + COPY:
        report.add(RESULTS, f"seconds.{' + '.join(parts)} exceed seconds.total (the whole process)",
                   f"≤ {_text(sec.total)}", math.fsum(parts.values()))
    schedule = getattr(results, "schedule", None)
    if schedule is not None:
        if schedule.steps != schedule.epochs * schedule.steps_per_epoch:
            report.add(RESULTS, "schedule.steps (epochs × steps_per_epoch)",
                       schedule.epochs * schedule.steps_per_epoch, schedule.steps)
        if results.status == "finished" and schedule.epochs != results.epochs_completed:
            report.add(RESULTS, "epochs_completed of a finished run (schedule.epochs)", schedule.epochs,
                       results.epochs_completed)

    # final figures: the last epoch's test evaluation; accuracy and per-class accuracy from the matrix
    matrix = _confusion(results, report)
    for name in ("test_accuracy", "test_top5_accuracy", "test_loss", "val_accuracy"):
        value = getattr(results, name)
        witnesses = []
        if last is not None and name in last:
            witnesses.append((f"metrics.jsonl epoch {last['epoch']}", last[name], COPY))
        elif last is not None and value is not None:
            report.add(RESULTS, f"{name} set but metrics.jsonl has no {name}", "none", value)
        if name == "test_accuracy" and matrix is not None:
            if witnesses and _close(value, witnesses[0][1], COPY) and not _close(value, matrix[0], COPY):
                matrix = _matrix_wrong(results, matrix, report)  # accuracy agrees with metrics.jsonl
                continue
            witnesses.append(("confusion matrix trace / total", matrix[0], COPY))
        fixed = _check_agrees(report, name, value, witnesses)
        if fixed is not None:
            corrected[name] = fixed
    if matrix is not None and matrix[1]:
        report.add(RESULTS, "per_class_accuracy (confusion matrix rows: diagonal / row total)",
                   "; ".join(f"{c!r} {_text(r)} ({d}/{n})" for c, r, _, d, n in matrix[1]),
                   "; ".join(f"{c!r} {_text(v)}" for c, _, v, _, _ in matrix[1]))
    if last is not None and "val_accuracy" in last and results.val_accuracy is None:
        report.add(RESULTS, "val_accuracy (metrics.jsonl has it)", last["val_accuracy"], None)
    if results.test_top5_accuracy + COPY < results.test_accuracy:
        report.add(RESULTS, "test_top5_accuracy below test_accuracy (top-5 hits include top-1 hits)",
                   f"≥ {_text(results.test_accuracy)}", results.test_top5_accuracy)

    hw = results.hardware  # data parallel: the same number of processes on every node, one device each
    if hw.world_size % hw.nodes:
        report.add(RESULTS, "hardware.world_size (a multiple of hardware.nodes: as many processes on each node)",
                   f"a multiple of {hw.nodes}", hw.world_size)
    elif hw.device == "cuda" and hw.gpu_count < hw.world_size // hw.nodes:
        report.add(RESULTS, "hardware.gpu_count (one GPU per process of a node)", f"≥ {hw.world_size // hw.nodes}",
                   hw.gpu_count)
    if hw.device != "cuda" and hw.nvidia_driver is not None:  # the driver of the GPU the run used: none on the CPU
        report.add(RESULTS, f"hardware.nvidia_driver of a {hw.device} run", "none", hw.nvidia_driver)

    _check_to_target(results, records, train, report, corrected)
    _check_dataset(results, report)
    _check_image(results, report, container)
    return corrected


def _confusion(results: contract.Results, report: Report) -> Optional[tuple[float, list]]:
    """Rows are true classes, columns predictions (trainer.module.EvalAccumulator). Returns (trace / total,
    the classes whose per_class_accuracy disagrees with their row) when the matrix is well-formed."""
    classes = results.dataset.classes
    cm = results.confusion_matrix
    n = len(classes)
    if len(cm) != n or any(len(row) != n for row in cm):
        report.add(RESULTS, "confusion_matrix shape (classes × classes)", f"{n}×{n}",
                   f"{len(cm)}×{'/'.join(sorted({str(len(r)) for r in cm})) or 0}")
        return None
    if any(v < 0 for row in cm for v in row):
        report.add(RESULTS, "confusion_matrix has negative counts", "counts ≥ 0", min(min(r) for r in cm))
        return None
    total = sum(map(sum, cm))
    if total != results.dataset.test_count:
        report.add(RESULTS, "confusion_matrix total (dataset.test_count)", results.dataset.test_count, total)
    if not total:
        return None
    rows = []
    if set(results.per_class_accuracy) != set(classes):
        report.add(RESULTS, "per_class_accuracy classes (dataset.classes)", sorted(classes),
                   sorted(results.per_class_accuracy))
    else:
        for i, name in enumerate(classes):
            row = sum(cm[i])
            from_row = cm[i][i] / row if row else 0.0
            if not _close(results.per_class_accuracy[name], from_row, FLOAT32):
                rows.append((name, from_row, results.per_class_accuracy[name], cm[i][i], row))
    return sum(cm[i][i] for i in range(n)) / total, rows


def _matrix_wrong(results: contract.Results, matrix: tuple[float, list], report: Report) -> None:
    """test_accuracy agrees with metrics.jsonl but not with the matrix: the matrix is the odd one out; its
    rows that disagree with per_class_accuracy go on the same line."""
    accuracy, rows = matrix
    what = "confusion_matrix trace / total (test_accuracy, metrics.jsonl)"
    expected, found = _text(results.test_accuracy), _text(accuracy)
    if rows:
        what += "; rows vs per_class_accuracy"
        expected += "; " + "; ".join(f"{c!r} {_text(v)}" for c, _, v, _, _ in rows)
        found += "; " + "; ".join(f"{c!r} {_text(r)} ({d}/{n})" for c, r, _, d, n in rows)
    report.add(RESULTS, what, expected, found)
    return None


def _check_to_target(results: contract.Results, records: Optional[list[dict]], train: float, report: Report,
                     corrected: dict[str, float]) -> None:
    """Seconds to target: the train seconds at the end of the first epoch whose test accuracy reached the
    target (metrics.jsonl), no later than the end of training."""
    sec, target, epoch = results.seconds, results.target_accuracy, results.epoch_to_target
    if target is None:
        for name, value in (("seconds.to_target", sec.to_target), ("epoch_to_target", epoch)):
            if value is not None:
                report.add(RESULTS, f"{name} without target_accuracy", "none", value)
        return
    if (sec.to_target is None) != (epoch is None):
        report.add(RESULTS, "seconds.to_target and epoch_to_target are set together",
                   "both or neither", f"to_target {_text(sec.to_target)}, epoch_to_target {epoch}")
    if sec.to_target is not None and sec.to_target > train + ROUNDED:
        report.add(RESULTS, "seconds.to_target exceeds seconds.train", f"≤ {_text(train)}", sec.to_target)
    if records is None:
        return
    first = next((r["epoch"] for r in records if r["test_accuracy"] >= target), None)
    at_first = records[first - 1]["train_seconds"] if first is not None else None
    if epoch != first:
        # one line for the pair: a to_target that matches the wrong epoch is the same mistake
        why = (f"none (no epoch's test accuracy reached {_text(target)})" if first is None else
               f"epoch {first} at {_text(at_first)} s (the first epoch whose test accuracy "
               f"{_text(records[first - 1]['test_accuracy'])} ≥ target {_text(target)})")
        report.add(RESULTS, "epoch_to_target, seconds.to_target", why,
                   f"epoch {epoch} at {_text(sec.to_target)} s" if epoch is not None else "none")
        if at_first is not None:
            corrected["seconds_to_target"] = at_first
        return
    if sec.to_target is not None and at_first is not None and not _close(sec.to_target, at_first, ROUNDED):
        report.add(RESULTS, "seconds.to_target", f"{_text(at_first)} (metrics.jsonl epoch {first} train_seconds)",
                   sec.to_target)
        corrected["seconds_to_target"] = at_first


def _check_dataset(results: contract.Results, report: Report) -> None:
    ds = results.dataset
    if not re.fullmatch(r"[0-9a-f]{64}", ds.fingerprint):
        report.add(RESULTS, "dataset.fingerprint is a sha256", "64 hex digits", _shorten(ds.fingerprint))
        return
    known = KNOWN_DATASETS.get(ds.name)
    if known is None:
        same = [name for name, k in KNOWN_DATASETS.items() if k.fingerprint == ds.fingerprint]
        report.notes.append(f"fingerprint not checked: unknown dataset {ds.name!r}"
                            + (f" (its fingerprint is that of {same[0]!r})" if same else ""))
        return
    if ds.format != known.format or ds.fingerprint != known.fingerprint:
        report.add(RESULTS, f"dataset.fingerprint of the known dataset {ds.name!r}",
                   f"{known.fingerprint} ({known.format})", f"{ds.fingerprint} ({ds.format})")
        return
    if tuple(ds.classes) != known.classes:
        report.add(RESULTS, f"dataset.classes of {ds.name!r}", list(known.classes), ds.classes)
    if ds.test_count != known.test_count:
        report.add(RESULTS, f"dataset.test_count of {ds.name!r}", known.test_count, ds.test_count)
    if ds.per_class is None and ds.train_count + ds.val_count != known.train_count:
        report.add(RESULTS, f"dataset.train_count of {ds.name!r}", known.train_count, ds.train_count + ds.val_count)


def _check_image(results: contract.Results, report: Report, container: Optional[bool]) -> None:
    digest = results.image_digest
    if digest is not None and not DIGEST.match(digest):
        report.add(RESULTS, "image_digest format", "sha256:<64 hex digits>", _shorten(digest))
    image_id = results.image_id
    if image_id is not None and not DIGEST.match(image_id):
        report.add(RESULTS, "image_id format", "sha256:<64 hex digits>", _shorten(image_id))
    build_id = results.image_build_id  # set by the trainer in any platbench image (issue 18)
    in_container = (results.platform in CONTAINER_PLATFORMS or build_id is not None) if container is None else container
    if in_container and not digest:
        # why there is none (trainer/image_record.py): a launcher passes it, else the project's record names
        # the image whose baked build id it holds
        why = ("none: the image was not built by `platbench image build` (no build id baked in, e.g. `docker "
               "compose build`), so no .platbench/image.json names it" if build_id == "" else
               f"none: no .platbench/image.json of build {build_id} where it ran (`platbench image build` writes it "
               "in the project folder)" if build_id else "none")
        report.add(RESULTS, f"image_digest of a container run (platform {results.platform!r})",
                   "the image's digest (PLATBENCH_IMAGE_DIGEST, or the record of `platbench image build`)", why)


# ---------------------------------------------------------------------------------------------- train.log
@dataclass(frozen=True)
class _LogLine:
    number: int  # 1-based line number in train.log
    name: str  # metric name (loglines.METRICS key)
    value: float
    parsed: bool = True  # False: a known label with a number that does not parse (already reported)


@dataclass(frozen=True)
class _Expected:
    name: str
    value: float
    where: str  # e.g. "epoch 2" or "final"
    source: str  # file the figure comes from


_LOG_PRECISION = 1e-5  # relative: a unit in the log's 6th significant digit


def _key(name: str, value: float) -> tuple[str, float]:
    """Compare at the log's precision (loglines.line prints 6 significant digits)."""
    return name, float(f"{float(value):.6g}")


def _parse_log(text: str, report: Report) -> list[tuple[int, Any]]:
    """[(line number, _LogLine | resumed-after-epoch int)]; lines that look like metric lines but do not
    parse are problems."""
    patterns = {name: re.compile(rf"^{loglines.regex(name)}\s*$") for name in loglines.METRICS}
    labels = {label: name for name, label in loglines.METRICS.items()}
    out: list[tuple[int, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        m = _RESUMED.match(line)
        if m:
            out.append((n, int(m.group(1))))
            continue
        if not _METRIC_LINE.match(line):
            continue
        for name, pattern in patterns.items():
            m = pattern.match(line)
            if m:
                out.append((n, _LogLine(n, name, float(m.group(1)))))
                break
        else:
            report.add(LOG, "metric line does not parse (trainer/loglines.py)", "'- <Label>: <number>'",
                       _shorten(line), n)
            name = labels.get(line[2:].split(":", 1)[0])
            if name is not None:  # it stands in for its metric's line: not also "missing"
                out.append((n, _LogLine(n, name, math.nan, parsed=False)))
    return out


def _expected_log(results: contract.Results, records: list[dict], corrected: dict[str, float]
                  ) -> tuple[dict[int, list[_Expected]], list[_Expected], set[str]]:
    """Per epoch: one line per metric the recorder logs that metrics.jsonl holds, in loglines.METRICS order.
    At the end: one line per figure results.json holds a log metric for (val_accuracy excepted: the trainer
    prints the test figures at the end)."""
    epochs = {
        rec["epoch"]: [_Expected(name, rec[name], f"epoch {rec['epoch']}", METRICS)
                       for name in loglines.METRICS if name in rec]
        for rec in records
    }
    final, optional = [], {"val_accuracy"}
    for name in loglines.METRICS:
        value = corrected.get(name, _results_value(results, name))
        if name in optional or not _is_number(value):
            continue
        final.append(_Expected(name, value, "final", RESULTS))
    return epochs, final, optional


def _check_log(parsed: list[tuple[int, Any]], results: contract.Results, records: list[dict],
               corrected: dict[str, float], report: Report) -> None:
    epochs, final, optional = _expected_log(results, records, corrected)
    n_epochs = len(records)
    # Segments: a resumed run appends to the same train.log after "Resuming from … after epoch K".
    segments: list[tuple[int, list[_LogLine]]] = [(0, [])]
    resume_lines = []
    for n, item in parsed:
        if isinstance(item, int):
            segments.append((item, []))
            resume_lines.append(n)
        else:
            segments[-1][1].append(item)
    last_start = segments[-1][0]
    if (results.resumed_from_epoch or 0) != last_start:
        report.add(LOG, "last 'Resuming from … after epoch K' line (results.json resumed_from_epoch)",
                   results.resumed_from_epoch, last_start or None, resume_lines[-1] if resume_lines else None)
    for i, (start, lines) in enumerate(segments):
        is_last = i == len(segments) - 1
        end = n_epochs if is_last else segments[i + 1][0]
        if not is_last and not lines:
            continue  # a resumed run may write to a fresh output dir: earlier epochs were logged elsewhere
        expected = [e for k in range(start + 1, end + 1) for e in epochs.get(k, [])]
        if is_last:
            expected += final
        _compare(lines, expected, optional, results, report)


def _compare(found: list[_LogLine], expected: list[_Expected], optional: set[str], results: contract.Results,
             report: Report) -> None:
    a = [_key(e.name, e.value) for e in expected]
    b = [_key(f.name, f.value) for f in found]
    label = loglines.METRICS
    after = 0
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            after = found[j2 - 1].number
            continue
        exp, got = list(expected[i1:i2]), list(found[j1:j2])
        # pair a missing and an unexpected line of the same metric: one line with both values
        for e in list(exp):
            match = next((g for g in got if g.name == e.name), None)
            if match is not None:
                # metrics.jsonl keeps 6 decimals, the log 6 significant digits of the unrounded figure:
                # the two roundings may differ in the last digit without the figure being different
                if match.parsed and not _close(float(e.value), match.value, _LOG_PRECISION):
                    report.add(LOG, f"{label[e.name]} ({e.where}) disagrees with {e.source}",
                               f"{float(e.value):.6g}", f"{match.value:.6g}", match.number)
                exp.remove(e)
                got.remove(match)
        for e in exp:
            report.add(LOG, f"{label[e.name]} line missing ({e.where}, after line {after})",
                       f"'{loglines.line(e.name, e.value)}' ({e.source})", "nothing")
        for g in got:
            if not g.parsed:
                continue
            if g.name in optional and _close(g.value, float(_results_value(results, g.name) or math.nan), 1e-5):
                continue  # a figure the trainer may print at the end; it agrees
            report.add(LOG, f"unexpected {label[g.name]} line", "no such line", f"{g.value:.6g}", g.number)
        if j2 > j1:
            after = found[j2 - 1].number


# ---------------------------------------------------------------------------------------------- command
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        print(f"error: {message} (python -m trainer check --help)", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str]) -> int:
    p = _Parser(prog="python -m trainer check",
                                description="Check that a run directory keeps the trainer's output contract.")
    p.add_argument("run_dir", type=Path, help="a run's output dir: results.json, metrics.jsonl, train.log")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--container", dest="container", action="store_true", default=None,
                   help="the run ran in the image: require its digest (default: by platform)")
    g.add_argument("--native", dest="container", action="store_false",
                   help="the run ran natively (e.g. a cloud launcher's local mode): no digest required")
    ns = p.parse_args(argv)
    try:
        report = run_checks(ns.run_dir, container=ns.container)
    except (UnusableInput, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        print(problem)
    if not report.problems:
        print(f"ok: {ns.run_dir} keeps the output contract (schema_version {contract.SCHEMA_VERSION})")
    return 1 if report.problems else 0
