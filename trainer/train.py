"""One training run, start to finish: data → model → Lightning fit → evaluation → outputs.

`run()` is what both `python -m trainer train` (in the container) and `platbench launch local`
(in-process) call."""
from __future__ import annotations

import json
import logging
import math
import os
import platform as _platform
import statistics
import time
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

from trainer.errors import ConfigError
from trainer.hyperparameters import check_ranges
from trainer.results import (LOG_FILE, MODEL_CARD, MODEL_WEIGHTS, Results, atomic_write_text, write_results)

EXIT_PREEMPTED = 143  # 128 + SIGTERM: checkpoint written, run again with the same checkpoint dir to resume
RUN_IDENTITY_FILE = "run.json"


@dataclass
class TrainConfig:
    data_dir: Path
    output_dir: Path
    model_dir: Path
    checkpoint_dir: Optional[Path] = None
    model: str = "small"
    seed: int = 0
    per_class: Optional[int] = None
    target_accuracy: Optional[float] = None
    image_size: int = 32
    device: str = "auto"            # auto | cpu | cuda
    precision: Optional[str] = None  # Lightning precision; default: the preset's on GPU, 32-true on CPU
    compile: bool = False
    cache_dir: Optional[Path] = None
    dataset_name: Optional[str] = None
    platform: str = "local"
    job_id: Optional[str] = None
    image_digest: Optional[str] = None
    image_id: Optional[str] = None        # trainer/image_record.py: the image's config digest
    image_build_id: Optional[str] = None  # PLATBENCH_BUILD_ID of the image this runs in (None: not in one)
    git_commit: Optional[str] = None
    devices: int = 1                # data-parallel processes per node (started by torchrun: trainer/distributed.py)
    # hyperparameter overrides; None keeps the preset's value
    overrides: dict = field(default_factory=dict)


@dataclass
class RunOutcome:
    status: str  # finished | preempted
    results: Optional[Results]
    exit_code: int


class RunLog:
    """Machine-readable lines go to stdout (or a caller's sink) and to output_dir/train.log."""

    def __init__(self, output_dir: Path, echo: Optional[Callable[[str], None]]):
        output_dir.mkdir(parents=True, exist_ok=True)
        self.file = (output_dir / LOG_FILE).open("a")
        self.echo = echo if echo is not None else (lambda s: print(s, flush=True))

    def __call__(self, text: str) -> None:
        self.file.write(text + "\n")
        self.file.flush()
        self.echo(text)

    def close(self) -> None:
        self.file.close()


class _Quiet:
    """The log of a data-parallel rank other than 0: rank 0 writes the run's log, its files and results."""

    def __call__(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def _hardware(device, precision: str, topo) -> dict:
    import torch

    from trainer.device import driver_version

    cuda = device.type == "cuda"
    return {
        "world_size": topo.world_size, "nodes": topo.nodes,
        "device": device.type,
        "gpu_name": torch.cuda.get_device_name(device) if cuda else None,
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "nvidia_driver": driver_version() if cuda else None,
        "cpu": _platform.processor() or _platform.machine(),
        "cpu_count": os.cpu_count() or 1,
        "precision": precision,
    }


def software_versions(device) -> dict:
    """Versions as plain strings; CUDA and cuDNN only when the run used them (None on CPU)."""
    import lightning
    import torch

    try:
        import torchvision
        vision = torchvision.__version__
    except ImportError:
        vision = None
    cuda = device.type == "cuda"
    cudnn = torch.backends.cudnn.version() if cuda and torch.backends.cudnn.is_available() else None
    return {
        "python": _platform.python_version(),
        "torch": str(torch.__version__),
        "torchvision": None if vision is None else str(vision),
        "lightning": str(lightning.__version__),
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": None if cudnn is None else str(cudnn),
    }


def plan_schedule(epochs: int, steps_per_pass: int, min_steps: int, per_class: Optional[int],
                  train_count: int, batch_size: int, budgeted: bool = False) -> dict:
    """The schedule to run. A run whose dataset is small for its schedule — its epochs would give fewer
    than `min_steps` optimizer steps — makes several passes over its images each epoch (the LR schedule
    stretches with the steps): 160 images at batch size 128 are one step an epoch, and ten steps leave a
    model near chance. Epochs, and so evaluations, stay as set: on tiny sets one test pass costs more than an
    epoch of training, and every epoch keeps its test figures. A dataset that already gives `min_steps`
    keeps the set schedule.

    Which runs have the budget (`budgeted`, from step_budget_applies): every --per-class run, and every run
    on its preset's epochs or with min_steps set; a full-data run given its own epochs alone runs them as
    given (`min_steps` 0 turns the budget off anywhere). A full-data run is small for its schedule below half the
    budget: 160 images make 10 steps and stay near chance, while the bundled digits' 110 steps learn (0.955) and
    keep their schedule and time (at 220 steps: 0.969 at 2.1× the CPU time). --per-class runs all reach the
    budget, so the ablation compares N at one budget."""
    passes, reason = 1, None
    natural = epochs * steps_per_pass
    short = natural < min_steps if per_class is not None else budgeted and natural < min_steps / 2
    if short:
        passes = math.ceil(min_steps / (epochs * steps_per_pass))
        subset = f"--per-class {per_class}: " if per_class is not None else ""
        reason = (f"{subset}{train_count} training images make {steps_per_pass} "
                  f"step{'s' if steps_per_pass != 1 else ''} a pass at batch size {batch_size}; each of the "
                  f"{epochs} epochs makes {passes} passes to reach min_steps {min_steps}")
    return {"epochs": epochs, "passes_per_epoch": passes, "steps_per_epoch": passes * steps_per_pass,
            "steps": epochs * passes * steps_per_pass, "min_steps": min_steps, "reason": reason}


def step_budget_applies(per_class: Optional[int], overrides: dict) -> bool:
    """Whether a run has the step budget: the ablation compares N at one budget whatever the epochs; one's
    own dataset on the preset's schedule must learn (issue 25: 160 images made 10 steps and stayed at
    chance); `--epochs N` alone on full data is a schedule of the user's choosing (a quick run stays quick)."""
    return per_class is not None or "epochs" not in overrides or "min_steps" in overrides


def _check_identity(checkpoint_dir: Path, identity: dict) -> None:
    """A checkpoint dir belongs to one run configuration; resuming a different one would mix results."""
    path = checkpoint_dir / RUN_IDENTITY_FILE
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved != identity:
            diff = sorted(k for k in set(saved) | set(identity) if saved.get(k) != identity.get(k))
            raise ConfigError(f"checkpoint dir {checkpoint_dir} holds a run with different {', '.join(diff)}; "
                              f"use another --checkpoint-dir or remove it")
    else:
        atomic_write_text(path, json.dumps(identity, sort_keys=True, indent=1))


def measure_inference(forward, x_test, batch_size: int, mean, std, autocast_dtype) -> tuple[float, float]:
    """(images/s over the test set at the eval batch size, median ms of single-image requests) of
    `forward`, a module in eval mode: the plain network or the classifier with its TTA."""
    import torch

    from trainer.data.batches import normalize

    device = x_test.device
    m = torch.tensor(mean, device=device)
    s = torch.tensor(std, device=device)
    forward.eval()
    ctx = (lambda: torch.autocast(device.type, dtype=autocast_dtype)) if autocast_dtype else torch.no_grad

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.inference_mode(), ctx():
        forward(normalize(x_test[:batch_size], m, s))  # warm-up (cudnn autotune, lazy init)
        sync()
        t0 = time.perf_counter()
        for i in range(0, len(x_test), batch_size):
            forward(normalize(x_test[i:i + batch_size], m, s))
        sync()
        throughput = len(x_test) / (time.perf_counter() - t0)
        samples = []
        for i in range(min(60, len(x_test))):
            one = normalize(x_test[i:i + 1], m, s)
            sync()
            t1 = time.perf_counter()
            forward(one)
            sync()
            samples.append((time.perf_counter() - t1) * 1000)
    latency = statistics.median(samples[10:] if len(samples) > 20 else samples)
    return throughput, latency


def _checkpoint_epoch(path: Path) -> int:
    """The epoch a checkpoint was written after, read with torch's restricted unpickler (tensors and plain
    containers only): a checkpoint dir may come from a bucket, and full unpickling would run its code."""
    import pickle

    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, TypeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"checkpoint {path} cannot be loaded safely ({first[:200]}); "
                          f"remove it or use another --checkpoint-dir") from None


def save_model(model_dir: Path, net, card: dict) -> None:
    import torch

    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = model_dir / f".{MODEL_WEIGHTS}.tmp"
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, tmp)
    os.replace(tmp, model_dir / MODEL_WEIGHTS)
    atomic_write_text(model_dir / MODEL_CARD, json.dumps(card, indent=2) + "\n")


def check_overrides(overrides: dict, known: dict) -> None:
    """Overrides (the CLI's hyperparameter flags) name hyperparameters the preset has (`known`)."""
    unknown = set(overrides) - set(known)
    if unknown:
        raise ConfigError(f"unknown hyperparameter(s): {', '.join(sorted(unknown))}")


def check_settings(epochs: int, batch_size: int, target_accuracy: Optional[float]) -> None:
    """The merged settings, refused in one line before any data is read."""
    if epochs < 1 or batch_size < 1:
        raise ConfigError("epochs and batch_size must be at least 1")
    if target_accuracy is not None and not 0 < target_accuracy <= 1:
        raise ConfigError("--target-accuracy is a fraction in (0, 1], e.g. 0.94")


def run_identity(cfg: TrainConfig, fingerprint: str, hyperparameters: dict) -> dict:
    """What a checkpoint dir is tied to (RUN_IDENTITY_FILE): resuming it with anything else is refused."""
    return {"model": cfg.model, "dataset": fingerprint, "seed": cfg.seed, "per_class": cfg.per_class,
            "image_size": cfg.image_size, "hyperparameters": hyperparameters}


def log_results(log: Callable[[str], None], results: Results, steps: int) -> None:
    """The run's final figures as log lines (trainer/loglines.py), after results.json is written."""
    from trainer import loglines

    log(loglines.line("test_accuracy", results.test_accuracy))
    log(loglines.line("test_top5_accuracy", results.test_top5_accuracy))
    log(loglines.line("train_seconds", results.seconds.train))
    log(loglines.line("eval_seconds", results.seconds.eval))
    if results.seconds.to_target is not None:
        log(loglines.line("seconds_to_target", results.seconds.to_target))
    log(loglines.line("optimizer_steps", steps))
    for name in ("plain_throughput_images_per_s", "plain_latency_ms_per_image",
                 "evaluated_throughput_images_per_s", "evaluated_latency_ms_per_image"):
        log(loglines.line(name, getattr(results, name)))


@dataclass
class _Feed:
    """The data as training sees it: on the device, batched, with the schedule planned over it."""
    train: object            # TrainBatches
    eval_names: list[str]    # "val" (a --per-class run's held-out images) then "test"
    eval_loaders: list
    train_images: object     # the training images on the device, uint8 (FastNet's whitening is fitted to them)
    test_images: object      # the test set on the device (inference speed is timed on it)
    mean: list[float]
    std: list[float]
    schedule: dict
    train_count: int
    val_count: int


def run(cfg: TrainConfig, callbacks: list | None = None, echo: Optional[Callable[[str], None]] = None) -> RunOutcome:
    """Data → model → Lightning fit → inference speed → model and results.json. ConfigError before anything
    trains; RunOutcome "preempted" after SIGTERM (the last epoch's checkpoint kept for a resume)."""
    started = datetime.now(timezone.utc)
    t_start = time.perf_counter()
    from trainer.data import cache

    preset, hp = _settings(cfg)
    # data: decoded once (cache), subset, moved to the device once; read before torch is imported and the
    # output folder exists, so a dataset refused (one class, unreadable images) fails fast, leaving nothing
    data = cache.load(Path(cfg.data_dir), cfg.image_size, cfg.cache_dir, cfg.dataset_name)
    split = _validation_split(cfg, hp, data)  # --per-class beyond a class's images: refused before the output folder
    data_seconds = time.perf_counter() - t_start
    imagenet_state = _imagenet_state(preset, hp)  # weights that cannot be fetched: refused before the output folder
    topo, device, precision = _placement(cfg, preset)
    zero = topo.rank == 0
    log = RunLog(Path(cfg.output_dir), echo) if zero else _Quiet()
    try:
        feed = _feed(cfg, hp, data, device, topo, log, split)
        net, module, params = _model(cfg, preset, hp, len(data.classes), feed, device, imagenet_state)
        recorder, ckpt_path, resumed_from = _recorder(cfg, hp, data.fingerprint, feed, net, zero, log)
        stopper = _early_stopping(hp, log)
        if not _fit(module, feed, [*stopper, recorder], ckpt_path, topo, device, precision, callbacks):
            log(f"SIGTERM received: stopping; the last epoch-end checkpoint is in {cfg.checkpoint_dir}")
            return RunOutcome("preempted", None, EXIT_PREEMPTED)
        final_eval = recorder.last_eval
        if stopper:  # the best validation epoch's weights are the model: measured, saved and reported
            stopper[0].restore(net)
            final_eval = stopper[0].best_eval
        if not zero:  # rank 0 measures inference and writes the model and results.json
            return RunOutcome("finished", None, 0)
        plain, evaluated = _inference_speed(module, feed, hp, precision, device)
        save_model(Path(cfg.model_dir), net, _model_card(cfg, hp, data, feed))
        results = Results(
            run_id=uuid.uuid4().hex, status="finished", platform=cfg.platform, job_id=cfg.job_id,
            image_digest=cfg.image_digest, image_id=cfg.image_id, image_build_id=cfg.image_build_id,
            git_commit=cfg.git_commit, started_at=started.isoformat(), finished_at=datetime.now(timezone.utc).isoformat(),
            dataset={"name": data.name, "format": data.format, "fingerprint": data.fingerprint, "classes": data.classes,
                     "image_size": cfg.image_size, "train_count": feed.train_count, "val_count": feed.val_count,
                     "test_count": len(data.x_test), "per_class": cfg.per_class},
            model=cfg.model, hyperparameters=hp.to_dict(), seed=cfg.seed, target_accuracy=cfg.target_accuracy,
            epoch_to_target=recorder.epoch_to_target, epochs_completed=len(recorder.history),
            resumed_from_epoch=resumed_from, hardware=_hardware(device, precision, topo),
            software=software_versions(device), schedule=feed.schedule,
            seconds={"total": time.perf_counter() - t_start, "data": data_seconds, "train": recorder.train_seconds,
                     "per_epoch": [h["epoch_seconds"] for h in recorder.history], "to_target": recorder.to_target,
                     "eval": recorder.eval_seconds},
            **_test_figures(final_eval, data.classes),
            plain_throughput_images_per_s=plain[0], plain_latency_ms_per_image=plain[1],
            evaluated_throughput_images_per_s=evaluated[0], evaluated_latency_ms_per_image=evaluated[1],
            params=params, early_stopping=stopper[0].best.record() if stopper else None,
        )
        write_results(Path(cfg.output_dir), results)
        log_results(log, results, feed.schedule["steps"])
        return RunOutcome("finished", results, 0)
    finally:
        log.close()


def _settings(cfg: TrainConfig):
    """The preset and its hyperparameters with the run's overrides, refused in one line when out of range."""
    from trainer.models import check_image_size, get_preset, with_overrides

    preset = get_preset(cfg.model)
    check_image_size(cfg.model, cfg.image_size)
    check_overrides(cfg.overrides, preset.hyperparameters.to_dict())
    check_ranges(cfg.overrides)  # a run started through the API is checked as the CLI checks it
    hp = with_overrides(preset.hyperparameters, **cfg.overrides)
    check_settings(hp.epochs, hp.batch_size, cfg.target_accuracy)
    return preset, hp


def _placement(cfg: TrainConfig, preset):
    """(topology, device, Lightning precision): this process's rank in a torchrun job, or a job of its own."""
    import torch

    from trainer import environment
    from trainer.device import resolve_device

    try:
        topo = environment.topology()
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"cannot read this process's place in a distributed job: {exc}") from None
    if not topo.launched:  # a process of its own (ranks are started by torchrun: trainer/distributed.py)
        topo = environment.Topology()
    device = resolve_device(cfg.device)
    if device.type == "cuda" and topo.world_size > 1:
        device = torch.device("cuda", topo.local_rank)  # one GPU per rank of this node
        torch.cuda.set_device(device)
    precision = cfg.precision or (preset.gpu_precision if device.type == "cuda" else "32-true")
    return topo, device, precision


def _validation_split(cfg: TrainConfig, hp, data):
    """(training, validation) indices: a --per-class run's N per class; a full-data run with early stopping
    holds out validation images by the same rule (20% of each class, trainer/data/subset.py), the images it
    stops on; None for any other full-data run. ConfigError/DataError when a class has fewer images than
    asked, or early stopping would have no validation image."""
    from trainer.data import subset

    if cfg.per_class is not None:
        return subset.per_class_split(data.y_train, data.classes, cfg.per_class, cfg.seed)
    if not hp.early_stopping_patience:
        return None
    split = subset.all_split(data.y_train, data.classes, cfg.seed)
    if not len(split[1]):
        raise ConfigError("early stopping needs validation images: every class has a single training image")
    return split


def _feed(cfg: TrainConfig, hp, data, device, topo, log, split) -> _Feed:
    """A --per-class run's subset and held-out validation images, normalisation from the training images,
    everything on the device once, this rank's shard of each batch, and the schedule over it."""
    import lightning as L
    import torch

    from trainer.data.batches import EvalBatches, TrainBatches, channel_stats, to_device_uint8

    shard = (topo.rank, topo.world_size)
    x_train, y_train = data.x_train, data.y_train
    x_val = y_val = None
    if split is not None:
        tr, va = split
        x_train, y_train, x_val, y_val = x_train[tr], y_train[tr], x_train[va], y_train[va]
    mean, std = channel_stats(x_train)
    L.seed_everything(cfg.seed, verbose=False)
    xt, yt = to_device_uint8(x_train, device), torch.from_numpy(y_train).to(device)
    xs, ys = to_device_uint8(data.x_test, device), torch.from_numpy(data.y_test).to(device)
    train_batches = TrainBatches(xt, yt, min(hp.batch_size, len(xt)), mean, std, cfg.seed,
                                 flip=hp.flip, translate=hp.translate, shard=shard)
    if train_batches.batch_size < topo.world_size:
        raise ConfigError(f"batch size {train_batches.batch_size} is smaller than the {topo.world_size} "
                          "processes it is split across; use fewer processes or a larger --per-class")
    eval_names, eval_loaders = [], []
    if x_val is not None:
        eval_names.append("val")
        eval_loaders.append(EvalBatches(to_device_uint8(x_val, device), torch.from_numpy(y_val).to(device),
                                        hp.eval_batch_size, mean, std, shard=shard))
    eval_names.append("test")
    eval_loaders.append(EvalBatches(xs, ys, hp.eval_batch_size, mean, std, shard=shard))
    schedule = plan_schedule(hp.epochs, train_batches.steps_per_pass, hp.min_steps, cfg.per_class, len(xt),
                             train_batches.batch_size, step_budget_applies(cfg.per_class, cfg.overrides))
    if schedule["passes_per_epoch"] > 1:
        train_batches = TrainBatches(xt, yt, train_batches.batch_size, mean, std, cfg.seed, flip=hp.flip,
                                     translate=hp.translate, passes=schedule["passes_per_epoch"], shard=shard)
        log(f"Schedule: {schedule['reason']} ({schedule['steps']} steps)")
    return _Feed(train_batches, eval_names, eval_loaders, xt, xs, mean, std, schedule, len(x_train),
                 0 if x_val is None else len(x_val))


def _imagenet_state(preset, hp) -> Optional[dict]:
    """torchvision's ImageNet weights for a `pretrained=1` run (trainer/pretrained.py), None otherwise."""
    if not hp.pretrained:
        return None
    from trainer.pretrained import fetch

    return fetch(preset)


def _model(cfg: TrainConfig, preset, hp, num_classes: int, feed: _Feed, device, imagenet_state: Optional[dict]):
    """(network, Lightning module, parameter count): built (from ImageNet weights where given and they fit),
    initialised from the training images where the preset says so (FastNet's whitening), channels-last on
    GPU, compiled on request."""
    import torch

    from trainer.data.batches import normalize
    from trainer.models import FastNet, count_parameters
    from trainer.module import Classifier

    net = preset.network(num_classes, cfg.image_size, imagenet_state)
    if isinstance(net, FastNet):
        net.init_whitening(normalize(feed.train_images[:5000], feed.train.mean, feed.train.std).cpu())
    params = count_parameters(net)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    module = Classifier(net, preset, hp, num_classes, len(feed.train), feed.eval_names)
    if cfg.compile:
        module.net = torch.compile(module.net)
    return net, module, params


def _recorder(cfg: TrainConfig, hp, fingerprint: str, feed: _Feed, net, zero: bool, log):
    """(EpochRecorder, checkpoint to resume from or None, the epoch it was written after + 1 or None). The
    recorder logs and checkpoints each epoch; a checkpoint dir of another run configuration is refused."""
    import torch

    from trainer.models import FastNet
    from trainer.recorder import CHECKPOINT_FILE, EpochRecorder

    def on_epoch_start(epoch: int) -> None:
        feed.train.epoch = epoch
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        if isinstance(net, FastNet):  # airbench trains the whitening bias for the first 3 epochs only
            net[0].bias.requires_grad = epoch < 3

    recorder = EpochRecorder(Path(cfg.output_dir), cfg.checkpoint_dir, cfg.target_accuracy, log, on_epoch_start)
    if cfg.checkpoint_dir is None:
        return recorder, None, None
    if zero:
        _check_identity(Path(cfg.checkpoint_dir), run_identity(cfg, fingerprint, hp.to_dict()))
    last = Path(cfg.checkpoint_dir) / CHECKPOINT_FILE
    if not last.is_file():
        return recorder, None, None
    resumed_from = _checkpoint_epoch(last) + 1
    log(f"Resuming from {last} after epoch {resumed_from}")
    return recorder, str(last), resumed_from


def _early_stopping(hp, log) -> list:
    """[the EarlyStopping callback] when the run has a patience, else []."""
    if not hp.early_stopping_patience:
        return []
    from trainer.early_stopping import EarlyStopping

    return [EarlyStopping(hp.early_stopping_patience, log)]


def _as_lightning_callback(cb):
    """A caller's callback as Lightning wants it. A plain object with Lightning-style hook methods
    (`on_train_start(trainer, module)` …) is accepted too, so a caller that only shows progress (the
    `local` platform's bar) need not import Lightning itself: each of its `on_*` methods is forwarded."""
    import lightning as L

    if isinstance(cb, L.Callback):
        return cb
    forward = L.Callback()
    for name in dir(cb):
        if name.startswith("on_") and callable(getattr(cb, name)):
            setattr(forward, name, getattr(cb, name))
    return forward


def _fit(module, feed: _Feed, own: list, ckpt_path: Optional[str], topo, device, precision: str,
         callbacks: list | None) -> bool:
    """Lightning's fit over the schedule's epochs, DDP across the ranks torchrun started; False when SIGTERM
    stopped it (the recorder wrote the last epoch's checkpoint). `own`: the trainer's callbacks in the order
    they run (early stopping, then the recorder that checkpoints), before the caller's."""
    import lightning as L
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(does not have many workers|num_workers|LeafSpec|"
                                "weights_only|Total length of).*")
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
        parallel = {}
        if topo.world_size > 1:  # DDP over the ranks torchrun started (gloo on CPU, NCCL on GPUs)
            from lightning.pytorch.strategies import DDPStrategy

            from trainer.distributed import any_rank_sigterm_callback

            parallel = {"devices": topo.local_world_size, "num_nodes": topo.nodes,
                        "strategy": DDPStrategy(process_group_backend="nccl" if device.type == "cuda" else "gloo")}
            callbacks = [*(callbacks or []), any_rank_sigterm_callback()]
        trainer = L.Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu", precision=precision,
            **(parallel or {"devices": 1}),
            max_epochs=feed.schedule["epochs"], logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, num_sanity_val_steps=0,
            callbacks=[*own, *(_as_lightning_callback(cb) for cb in callbacks or [])],
            use_distributed_sampler=False, deterministic=False,
            barebones=True,  # Lightning's minimal-overhead mode: none of its per-step logging machinery
        )
        try:
            # weights_only: Lightning's own resume unpickles nothing but tensors and plain containers
            trainer.fit(module, train_dataloaders=feed.train, val_dataloaders=feed.eval_loaders, ckpt_path=ckpt_path,
                        weights_only=True)
        except SIGTERMException:
            return False
    return True


def _inference_speed(module, feed: _Feed, hp, precision: str, device) -> tuple[tuple[float, float], tuple[float, float]]:
    """((images/s, ms/image) of the plain network, the same as evaluated). Plain: one forward pass, what
    `serve` answers; evaluated: the classifier as the test accuracy was measured (with the preset's TTA).
    Without TTA they are the same model: measured once."""
    import torch

    autocast = torch.bfloat16 if "bf16" in precision else torch.float16 if "16" in precision else None
    module.to(device)
    plain = measure_inference(module.net, feed.test_images, hp.eval_batch_size, feed.mean, feed.std, autocast)
    evaluated = (measure_inference(module, feed.test_images, hp.eval_batch_size, feed.mean, feed.std, autocast)
                 if hp.tta else plain)
    return plain, evaluated


def _model_card(cfg: TrainConfig, hp, data, feed: _Feed) -> dict:
    """What `serve` needs beside the weights to answer a request as the trainer evaluated."""
    return {"preset": cfg.model, "classes": data.classes, "num_classes": len(data.classes),
            "image_size": cfg.image_size, "mean": feed.mean, "std": feed.std, "tta": hp.tta,
            "dataset_fingerprint": data.fingerprint, "channels": "RGB",
            "input": "uint8 HWC image, resized to image_size, /255, (x-mean)/std"}


def _test_figures(last_eval: dict, classes: list[str]) -> dict:
    """The last epoch's evaluation as results.json holds it."""
    test = last_eval["test"]
    return {"test_accuracy": test["accuracy"], "test_top5_accuracy": test["top5_accuracy"], "test_loss": test["loss"],
            "val_accuracy": last_eval["val"]["accuracy"] if "val" in last_eval else None,
            "per_class_accuracy": dict(zip(classes, test["per_class_accuracy"])),
            "confusion_matrix": test["confusion_matrix"]}
