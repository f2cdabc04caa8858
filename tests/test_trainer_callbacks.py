"""trainer.train takes plain objects with Lightning-style hooks as callbacks (the local platform's progress
bar, which must not import Lightning) and forwards their hooks; a Lightning Callback passes as it is."""
from __future__ import annotations


def test_a_plain_hook_object_is_forwarded_and_a_callback_kept():
    import lightning as L

    from trainer.train import _as_lightning_callback

    class Hooks:
        def __init__(self):
            self.calls = []

        def on_train_start(self, trainer, module):
            self.calls.append(("start", trainer, module))

        def on_train_epoch_end(self, trainer, module):
            self.calls.append(("epoch", trainer, module))

    hooks = Hooks()
    forward = _as_lightning_callback(hooks)
    assert isinstance(forward, L.Callback)
    forward.on_train_start("T", "M")
    forward.on_train_epoch_end("T", "M")
    forward.on_train_batch_end("T", "M", None, None, 0)  # a hook the object lacks stays Lightning's no-op
    assert hooks.calls == [("start", "T", "M"), ("epoch", "T", "M")]
    native = L.Callback()
    assert _as_lightning_callback(native) is native
