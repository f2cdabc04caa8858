"""The stand-in's shadow of the `trainer` package (tests/stand_in/__init__.py says why it exists).

Put first on PYTHONPATH, this package is `trainer`; its path continues into the real trainer/, so every
module but `trainer.train` is the real one (data, results, environment, cli, models …)."""
from pathlib import Path

_REAL = Path(__file__).resolve().parents[4] / "trainer"
__path__.append(str(_REAL))  # a package's own __path__
exec(compile((_REAL / "__init__.py").read_text(), str(_REAL / "__init__.py"), "exec"))
