"""The LightningModule: loss, optimizer and schedule, and evaluation that accumulates on the device
(no per-step host syncs), so Lightning adds next to nothing to a raw PyTorch loop."""
from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from trainer.distributed import all_reduce_sum
from trainer.models import Hyperparameters, Preset, param_groups


def tta_logits(net: nn.Module, x: torch.Tensor, level: int) -> torch.Tensor:
    """Test-time augmentation: 0 plain, 1 + mirror, 2 + mirror of two 1-pixel translations."""
    logits = net(x)
    if level >= 1:
        logits = 0.5 * logits + 0.5 * net(x.flip(-1))
    if level >= 2:
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        h, w = x.shape[-2:]
        shifted = [padded[..., 0:h, 0:w], padded[..., 2:h + 2, 2:w + 2]]
        extra = torch.stack([0.5 * net(s) + 0.5 * net(s.flip(-1)) for s in shifted]).mean(0)
        logits = 0.5 * logits + 0.5 * extra
    return logits


class EvalAccumulator:
    """Loss sum, top-1/top-5 hits and the confusion matrix, kept as device tensors until read."""

    def __init__(self, num_classes: int, device: torch.device):
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.top5 = torch.zeros((), dtype=torch.long, device=device)
        self.count = 0

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        logits = logits.float()
        self.loss_sum += F.cross_entropy(logits, y, reduction="sum")
        pred = logits.argmax(1)
        self.confusion += torch.bincount(y * self.num_classes + pred, minlength=self.num_classes**2).view(
            self.num_classes, self.num_classes)
        k = min(5, self.num_classes)
        self.top5 += (logits.topk(k, dim=1).indices == y[:, None]).any(1).sum()
        self.count += len(y)

    def summary(self) -> dict:
        """The whole set's figures: under data parallelism each rank holds a slice, summed here."""
        count = torch.tensor([self.count], dtype=torch.long, device=self.confusion.device)
        all_reduce_sum(self.confusion, self.loss_sum, self.top5, count)
        self.count = int(count.item())
        cm = self.confusion.cpu()
        n = max(self.count, 1)
        per_class_total = cm.sum(1).clamp(min=1)
        return {
            "loss": float(self.loss_sum) / n,
            "accuracy": float(cm.diag().sum()) / n,
            "top5_accuracy": float(self.top5) / n,
            "per_class_accuracy": (cm.diag().float() / per_class_total).tolist(),
            "confusion_matrix": cm.tolist(),
            "count": self.count,
        }


class Classifier(L.LightningModule):
    def __init__(self, net: nn.Module, preset: Preset, hp: Hyperparameters, num_classes: int,
                 steps_per_epoch: int, eval_names: list[str]):
        super().__init__()
        self.net, self.preset, self.hp = net, preset, hp
        self.num_classes = num_classes
        self.steps_per_epoch = steps_per_epoch
        self.eval_names = eval_names  # validation dataloader index → "val" / "test"
        self.evals: dict[str, EvalAccumulator] = {}
        self.last_eval: dict[str, dict] = {}
        self._train_loss = None
        self._train_hits = None
        self._train_count = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tta_logits(self.net, x, self.hp.tta)

    # -- training
    def on_train_epoch_start(self) -> None:
        self._train_loss = torch.zeros((), device=self.device)
        self._train_hits = torch.zeros((), dtype=torch.long, device=self.device)
        self._train_count = 0

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.hp.label_smoothing)
        self._train_loss += loss.detach() * len(y)
        self._train_hits += (logits.detach().argmax(1) == y).sum()
        self._train_count += len(y)
        return loss

    def epoch_train_summary(self) -> dict:
        """Read once per epoch by the recorder: the only host sync of the training loop (summed over the
        ranks under data parallelism)."""
        count = torch.tensor([self._train_count], dtype=torch.long, device=self._train_hits.device)
        all_reduce_sum(self._train_loss, self._train_hits, count)
        self._train_count = int(count.item())
        n = max(self._train_count, 1)
        return {"train_loss": float(self._train_loss) / n, "train_accuracy": float(self._train_hits) / n,
                "lr": self.optimizers().param_groups[-1]["lr"]}

    # -- evaluation (validation loop: loader 0..k named by eval_names)
    def on_validation_epoch_start(self) -> None:
        self.evals = {name: EvalAccumulator(self.num_classes, self.device) for name in self.eval_names}

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        x, y = batch
        self.evals[self.eval_names[dataloader_idx]].update(self(x), y)

    def on_validation_epoch_end(self) -> None:
        self.last_eval = {name: acc.summary() for name, acc in self.evals.items()}

    # -- optimisation
    def configure_optimizers(self):
        hp = self.hp
        opt = torch.optim.SGD(param_groups(self.net, self.preset, hp), lr=hp.lr, momentum=hp.momentum,
                              weight_decay=hp.weight_decay, nesterov=hp.momentum > 0)
        if hp.lr_schedule == "constant":  # Neuromation's protocol: no learning-rate scheduling
            return opt
        total = max(1, hp.epochs * self.steps_per_epoch)
        warm = max(1, int(total * hp.warmup_fraction))

        def factor(step: int) -> float:
            if step < warm:
                return hp.lr_start + (1 - hp.lr_start) * step / warm
            frac = min(1.0, (step - warm) / max(1, total - warm))
            return 1 + (hp.lr_end - 1) * frac

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
