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


class _Log:
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

    cuda = device.type == "cuda"
    return {
        "world_size": topo.world_size, "nodes": topo.nodes,
        "device": device.type,
        "gpu_name": torch.cuda.get_device_name(device) if cuda else None,
        "gpu_count": torch.cuda.device_count() if cuda else 0,
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
                  train_count: int, batch_size: int) -> dict:
    """The schedule to run. A --per-class run whose epochs would give fewer than `min_steps` optimizer
    steps makes several passes over its images each epoch (the LR schedule stretches with the steps).
    Epochs, and so evaluations, stay the preset's: on tiny sets one test pass costs more than an epoch of
    training, and every epoch keeps its test figures. Full-data runs keep the preset's schedule."""
    passes, reason = 1, None
    if per_class is not None and epochs * steps_per_pass < min_steps:
        passes = math.ceil(min_steps / (epochs * steps_per_pass))
        reason = (f"--per-class {per_class}: {train_count} training images make {steps_per_pass} "
                  f"step{'s' if steps_per_pass != 1 else ''} a pass at batch size {batch_size}; each of the "
                  f"{epochs} epochs makes {passes} passes to reach min_steps {min_steps}")
    return {"epochs": epochs, "passes_per_epoch": passes, "steps_per_epoch": passes * steps_per_pass,
            "steps": epochs * passes * steps_per_pass, "min_steps": min_steps, "reason": reason}


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


def run(cfg: TrainConfig, callbacks: list | None = None, echo: Optional[Callable[[str], None]] = None) -> RunOutcome:
    started = datetime.now(timezone.utc)
    t_start = time.perf_counter()
    import lightning as L
    import torch
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from trainer import loglines
    from trainer.data import cache, subset
    from trainer.data.batches import EvalBatches, TrainBatches, channel_stats, normalize, to_device_uint8
    from trainer.models import FastNet, count_parameters, get_preset, with_overrides
    from trainer.module import Classifier
    from trainer.recorder import CHECKPOINT_FILE, EpochRecorder

    preset = get_preset(cfg.model)
    unknown = set(cfg.overrides) - set(preset.hyperparameters.to_dict())
    if unknown:
        raise ConfigError(f"unknown hyperparameter(s): {', '.join(sorted(unknown))}")
    hp = with_overrides(preset.hyperparameters, **cfg.overrides)
    if hp.epochs < 1 or hp.batch_size < 1:
        raise ConfigError("epochs and batch_size must be at least 1")
    if cfg.target_accuracy is not None and not 0 < cfg.target_accuracy <= 1:
        raise ConfigError("--target-accuracy is a fraction in (0, 1], e.g. 0.94")
    from trainer import environment
    from trainer.device import resolve_device

    try:
        topo = environment.topology()
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"cannot read this process's place in a distributed job: {exc}") from None
    if not topo.launched:  # a process of its own (ranks are started by torchrun: trainer/distributed.py)
        topo = environment.Topology()
    shard = (topo.rank, topo.world_size)
    zero = topo.rank == 0
    device = resolve_device(cfg.device)
    if device.type == "cuda" and topo.world_size > 1:
        device = torch.device("cuda", topo.local_rank)  # one GPU per rank of this node
        torch.cuda.set_device(device)
    precision = cfg.precision or (preset.gpu_precision if device.type == "cuda" else "32-true")
    log = _Log(Path(cfg.output_dir), echo) if zero else _Quiet()
    try:
        # ---- data: decoded once (cache), subset, moved to the device once
        data = cache.load(Path(cfg.data_dir), cfg.image_size, cfg.cache_dir, cfg.dataset_name)
        data_seconds = time.perf_counter() - t_start
        x_train, y_train = data.x_train, data.y_train
        x_val = y_val = None
        if cfg.per_class is not None:
            tr, va = subset.per_class_split(y_train, data.classes, cfg.per_class, cfg.seed)
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
                                 train_batches.batch_size)
        if schedule["passes_per_epoch"] > 1:
            train_batches = TrainBatches(xt, yt, train_batches.batch_size, mean, std, cfg.seed, flip=hp.flip,
                                         translate=hp.translate, passes=schedule["passes_per_epoch"], shard=shard)
            log(f"Schedule: {schedule['reason']} ({schedule['steps']} steps)")

        # ---- model
        num_classes = len(data.classes)
        net = preset.build(num_classes)
        if isinstance(net, FastNet):
            net.init_whitening(normalize(xt[:5000], train_batches.mean, train_batches.std).cpu())
        params = count_parameters(net)
        if device.type == "cuda":
            net = net.to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True
        module = Classifier(net, preset, hp, num_classes, len(train_batches), eval_names)
        if cfg.compile:
            module.net = torch.compile(module.net)

        def on_epoch_start(epoch: int) -> None:
            train_batches.epoch = epoch
            torch.manual_seed(cfg.seed * 100_003 + epoch)
            if isinstance(net, FastNet):  # airbench trains the whitening bias for the first 3 epochs only
                net[0].bias.requires_grad = epoch < 3

        recorder = EpochRecorder(Path(cfg.output_dir), cfg.checkpoint_dir, cfg.target_accuracy, log, on_epoch_start)
        ckpt_path = None
        resumed_from = None
        if cfg.checkpoint_dir is not None:
            identity = {"model": cfg.model, "dataset": data.fingerprint, "seed": cfg.seed, "per_class": cfg.per_class,
                        "image_size": cfg.image_size, "hyperparameters": hp.to_dict()}
            if zero:
                _check_identity(Path(cfg.checkpoint_dir), identity)
            last = Path(cfg.checkpoint_dir) / CHECKPOINT_FILE
            if last.is_file():
                ckpt_path = str(last)
                resumed_from = _checkpoint_epoch(last) + 1
                log(f"Resuming from {last} after epoch {resumed_from}")
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
                max_epochs=schedule["epochs"], logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, num_sanity_val_steps=0, callbacks=[recorder, *(callbacks or [])],
                use_distributed_sampler=False, deterministic=False,
                barebones=True,  # Lightning's minimal-overhead mode: none of its per-step logging machinery
            )
            try:
                # weights_only: Lightning's own resume unpickles nothing but tensors and plain containers
                trainer.fit(module, train_dataloaders=train_batches, val_dataloaders=eval_loaders, ckpt_path=ckpt_path,
                            weights_only=True)
            except SIGTERMException:
                log(f"SIGTERM received: stopping; the last epoch-end checkpoint is in {cfg.checkpoint_dir}")
                return RunOutcome("preempted", None, EXIT_PREEMPTED)
        if not zero:  # rank 0 measures inference and writes the model and results.json
            return RunOutcome("finished", None, 0)

        # ---- final figures: the last epoch's test evaluation, then inference speed
        test = recorder.last_eval["test"]
        autocast = torch.bfloat16 if "bf16" in precision else torch.float16 if "16" in precision else None
        module.to(device)
        # plain: one forward pass of the network, what `serve` answers; evaluated: the classifier as the test
        # accuracy was measured (with the preset's TTA). Without TTA they are the same model: measured once.
        plain = measure_inference(module.net, xs, hp.eval_batch_size, mean, std, autocast)
        evaluated = measure_inference(module, xs, hp.eval_batch_size, mean, std, autocast) if hp.tta else plain
        card = {"preset": cfg.model, "classes": data.classes, "num_classes": num_classes, "image_size": cfg.image_size,
                "mean": mean, "std": std, "tta": hp.tta, "dataset_fingerprint": data.fingerprint,
                "channels": "RGB", "input": "uint8 HWC image, resized to image_size, /255, (x-mean)/std"}
        save_model(Path(cfg.model_dir), net, card)
        finished = datetime.now(timezone.utc)
        results = Results(
            run_id=uuid.uuid4().hex, status="finished", platform=cfg.platform, job_id=cfg.job_id,
            image_digest=cfg.image_digest, image_id=cfg.image_id, image_build_id=cfg.image_build_id,
            git_commit=cfg.git_commit, started_at=started.isoformat(), finished_at=finished.isoformat(),
            dataset={"name": data.name, "format": data.format, "fingerprint": data.fingerprint, "classes": data.classes,
                     "image_size": cfg.image_size, "train_count": len(x_train),
                     "val_count": 0 if x_val is None else len(x_val), "test_count": len(data.x_test),
                     "per_class": cfg.per_class},
            model=cfg.model, hyperparameters=hp.to_dict(), seed=cfg.seed, target_accuracy=cfg.target_accuracy,
            epoch_to_target=recorder.epoch_to_target, epochs_completed=len(recorder.history),
            resumed_from_epoch=resumed_from, hardware=_hardware(device, precision, topo),
            software=software_versions(device), schedule=schedule,
            seconds={"total": time.perf_counter() - t_start, "data": data_seconds, "train": recorder.train_seconds,
                     "per_epoch": [h["epoch_seconds"] for h in recorder.history], "to_target": recorder.to_target,
                     "eval": recorder.eval_seconds},
            test_accuracy=test["accuracy"], test_top5_accuracy=test["top5_accuracy"], test_loss=test["loss"],
            val_accuracy=recorder.last_eval["val"]["accuracy"] if "val" in recorder.last_eval else None,
            per_class_accuracy=dict(zip(data.classes, test["per_class_accuracy"])),
            confusion_matrix=test["confusion_matrix"],
            plain_throughput_images_per_s=plain[0], plain_latency_ms_per_image=plain[1],
            evaluated_throughput_images_per_s=evaluated[0], evaluated_latency_ms_per_image=evaluated[1],
            params=params,
        )
        write_results(Path(cfg.output_dir), results)
        log(loglines.line("test_accuracy", results.test_accuracy))
        log(loglines.line("test_top5_accuracy", results.test_top5_accuracy))
        log(loglines.line("train_seconds", results.seconds.train))
        log(loglines.line("eval_seconds", results.seconds.eval))
        if results.seconds.to_target is not None:
            log(loglines.line("seconds_to_target", results.seconds.to_target))
        log(loglines.line("optimizer_steps", schedule["steps"]))
        for name in ("plain_throughput_images_per_s", "plain_latency_ms_per_image",
                     "evaluated_throughput_images_per_s", "evaluated_latency_ms_per_image"):
            log(loglines.line(name, getattr(results, name)))
        return RunOutcome("finished", results, 0)
    finally:
        log.close()
