"""Early stopping on validation accuracy with the best epoch's weights restored before the test
(`--hp early_stopping_patience=N`; SageMaker JumpStart's protocol: 10 epochs, patience 3).

`BestEpoch` is the rule alone, on a sequence of (epoch, validation accuracy): an epoch is better only when
its accuracy is strictly higher than every earlier one (a tie keeps the earlier, smaller-epoch weights);
training stops once `patience` epochs in a row were not better. `EarlyStopping` applies it in a Lightning
run: it keeps a copy of the network's weights and evaluation at the best epoch, stops the fit, and the
trainer restores those weights before it measures, saves and reports the model (trainer/train.py)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Optional

import lightning as L
import torch


@dataclass
class BestEpoch:
    patience: int
    best_epoch: Optional[int] = None
    best_accuracy: Optional[float] = None
    waited: int = 0           # epochs since the best one
    stopped_early: bool = False

    def update(self, epoch: int, accuracy: float) -> bool:
        """Take epoch `epoch`'s (1-based) validation accuracy; True when it is the best so far."""
        if self.best_accuracy is None or accuracy > self.best_accuracy:
            self.best_epoch, self.best_accuracy, self.waited = epoch, accuracy, 0
            return True
        self.waited += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.waited >= self.patience

    def record(self) -> dict:
        """What results.json's early_stopping holds."""
        return {"patience": self.patience, "best_epoch": self.best_epoch, "best_val_accuracy": self.best_accuracy,
                "stopped_early": self.stopped_early}


class EarlyStopping(L.Callback):
    """Reads each epoch's validation accuracy (module.last_eval["val"]), keeps the best epoch's weights (a CPU
    copy) and evaluation, and stops the fit after `patience` epochs without a better one. Its state travels
    in the epoch-end checkpoint, so a resumed run stops and restores as an uninterrupted one; it must run
    before the recorder, which writes that checkpoint."""

    def __init__(self, patience: int, log: Callable[[str], None]):
        self.best = BestEpoch(patience)
        self.emit = log
        self.best_state: Optional[dict] = None   # the network's state_dict at the best epoch (CPU)
        self.best_eval: dict = {}                # module.last_eval at the best epoch: its test figures

    def on_train_epoch_end(self, trainer, module) -> None:
        val = module.last_eval.get("val")
        if val is None:
            return
        epoch = trainer.current_epoch + 1
        if self.best.update(epoch, val["accuracy"]):
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in module.net.state_dict().items()}
            self.best_eval = module.last_eval
        if self.best.should_stop and epoch < trainer.max_epochs:
            self.best.stopped_early = True
            trainer.should_stop = True
            self.emit(f"Early stopping: no better validation accuracy in the {self.best.patience} epochs after "
                      f"epoch {self.best.best_epoch} ({self.best.best_accuracy:.4f}); stopped after epoch {epoch}")

    def restore(self, net: torch.nn.Module) -> None:
        """Put the best epoch's weights back into `net` (a no-op before any validation)."""
        if self.best_state is not None:
            net.load_state_dict(self.best_state)
            self.emit(f"Restored the weights of epoch {self.best.best_epoch}, the best validation accuracy "
                      f"({self.best.best_accuracy:.4f})")

    def state_dict(self) -> dict:
        return {"best": asdict(self.best), "best_state": self.best_state, "best_eval": self.best_eval}

    def load_state_dict(self, state: dict) -> None:
        self.best = BestEpoch(**state["best"])
        self.best_state = state["best_state"]
        self.best_eval = state["best_eval"]
