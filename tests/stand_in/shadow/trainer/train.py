"""`trainer.train` under the stand-in: the real module (executed here, so TrainConfig, RunOutcome,
plan_schedule … are the real ones) with `run` replaced by the stand-in's replay of the golden run."""
from pathlib import Path as _Path

_REAL = _Path(__file__).resolve().parents[4] / "trainer" / "train.py"
exec(compile(_REAL.read_text(), str(_REAL), "exec"))

from platbench_stand_in import run  # noqa: E402, F401 - the one name that differs
