"""The trained model as an MLflow pyfunc model, so that any MLflow user can serve it
(`mlflow models serve -m runs:/RUN_ID/model --env-manager local`) and Databricks Model Serving can host it.

The model directory keeps the trainer's layout (`model.pt` + `model.json` at its top, what `serve`,
`predict --model-dir` and every launcher read) and gains MLflow's files beside them: `MLmodel`, the pickled
`PlatbenchImageModel` (pickled by reference: its code travels as `code/trainer`), an input example, a
signature and the requirements. `predict` decodes and preprocesses exactly as `trainer.inference` does for
`serve`, so a prediction here equals the trainer's own for the same file.

Request shapes (MLflow's scoring server, https://mlflow.org/docs/latest/deployment/deploy-model-locally/
"Inference Server Specification": JSON with one of `dataframe_split`, `dataframe_records`, `instances`,
`inputs`): one column `b64` of base64 PNG/JPEG bytes, e.g. `{"instances": [{"b64": "iVBOR…"}]}` — the
same body `platbench load --format json` sends — or `{"dataframe_split": {"columns": ["b64"], "data":
[["iVBOR…"]]}}`. The answer is `{"predictions": [{"class", "index", "probability", "top_k"}, …]}`, one per
image, as `serve` answers. Imports nothing from platforms/ (the trainer never does)."""
from __future__ import annotations

import base64
import io
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

INPUT_COLUMN = "b64"
ARTIFACT = "model_dir"          # the pyfunc artifact naming the trainer's model directory
DEFAULT_TOP_K = 5
# what the served model imports: the trainer's inference path (trainer.module imports lightning)
REQUIREMENTS = ("mlflow", "torch", "torchvision", "lightning", "numpy", "pillow")
# PyTorch's CPU-only wheels (torch and torchvision as X+cpu). The model predicts on the CPU (load_context), and a
# serving environment is built from the model's requirements (Databricks Model Serving installs them when it
# builds the endpoint: https://docs.databricks.com/aws/en/machine-learning/model-serving/private-libraries-model-serving),
# where PyPI's Linux torch is the multi-GB CUDA build. With this index beside PyPI, `torch==2.15.0` resolves to
# 2.15.0+cpu: a specifier without a local label ignores candidates' labels, and pip takes the highest candidate,
# where 2.15.0+cpu sorts above 2.15.0 (PEP 440, "Local version identifiers"); where the index has no +cpu build
# (macOS) PyPI's, already CPU-only, is taken. MLflow's own CI installs CPU torch this way (mlflow/mlflow#9340).
CPU_WHEELS = "https://download.pytorch.org/whl/cpu"


def _b64_column(model_input: Any) -> list[str]:
    """The base64 strings, whichever shape MLflow's parser handed over (a DataFrame for a column
    signature, a dict of arrays for `instances`; a list when called directly)."""
    if isinstance(model_input, pd.DataFrame):
        if INPUT_COLUMN not in model_input.columns:
            raise ValueError(f"input needs a column {INPUT_COLUMN!r} of base64 PNG/JPEG bytes")
        values = model_input[INPUT_COLUMN].tolist()
    elif isinstance(model_input, dict):
        values = list(model_input.get(INPUT_COLUMN, []))
    elif isinstance(model_input, (list, tuple)):
        values = [v.get(INPUT_COLUMN) if isinstance(v, dict) else v for v in model_input]
    else:
        raise ValueError(f"cannot read images from a {type(model_input).__name__}")
    if not values:
        raise ValueError("no images in the request")
    return [str(v) for v in values]


class PlatbenchImageModel(mlflow.pyfunc.PythonModel):
    """trainer.inference behind MLflow's pyfunc interface: load once, warm up, predict batches."""

    def load_context(self, context) -> None:
        import torch

        from trainer.inference import default_threads, load_model, warm_up

        torch.set_num_threads(default_threads())
        self.model = load_model(Path(context.artifacts[ARTIFACT]), "cpu")
        warm_up(self.model)  # the first forward pass is slow on CPU; pay it before the first request

    # the hint is the shape a column signature yields (a dict or list when called directly also works);
    # MLflow infers no schema from it, so the explicit signature() is the one that applies
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> list[dict]:
        import numpy as np
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        from trainer.inference import ImageError, decode_instance

        top_k = int((params or {}).get("top_k", DEFAULT_TOP_K))
        try:
            images = [decode_instance({INPUT_COLUMN: v}, self.model.image_size) for v in _b64_column(model_input)]
        except (ImageError, ValueError) as exc:
            # MLflow answers an INVALID_PARAMETER_VALUE with HTTP 400, anything else with 500
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        return self.model.predict(np.stack(images), top_k)


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Object, ParamSchema, ParamSpec, Property, Schema

    top = Object([Property("class", "string"), Property("index", "long"), Property("probability", "double")])
    return ModelSignature(
        inputs=Schema([ColSpec("string", INPUT_COLUMN)]),
        outputs=Schema([ColSpec("string", "class"), ColSpec("long", "index"), ColSpec("double", "probability"),
                        ColSpec(Array(top), "top_k")]),
        params=ParamSchema([ParamSpec("top_k", "long", DEFAULT_TOP_K)]),
    )


def input_example(card: dict):
    """One mid-grey PNG of the card's size, base64: what a request carries."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    size = int(card["image_size"])
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), 128, dtype=np.uint8)).save(buf, format="PNG")
    return pd.DataFrame({INPUT_COLUMN: [base64.b64encode(buf.getvalue()).decode("ascii")]})


def pin(name: str, version: str) -> str:
    """`name==version` without the version's PEP 440 local label (2.15.0+cu132 → 2.15.0): a label names one
    build on one index (here the workstation's) and resolves nowhere else."""
    return f"{name}=={version.split('+', 1)[0]}"


def requirements() -> list[str]:
    """The versions installed here, public parts only, and the CPU wheel index (CPU_WHEELS): given explicitly,
    MLflow skips inferring them (which loads the model in a subprocess and takes tens of seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    out = [f"--extra-index-url {CPU_WHEELS}"]
    for name in REQUIREMENTS:
        try:
            out.append(pin(name, version(name)))
        except PackageNotFoundError:
            try:
                out.append(pin(name, version(name + "-skinny")))
            except PackageNotFoundError:
                out.append(name)
    return out


@contextmanager
def _quiet():
    """MLflow's advice while saving (pickling, type hints, validating the example) is not the user's to act
    on: kept off the CLI's output."""
    import logging
    import warnings

    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        logger.setLevel(level)


def save(model_dir: Path, dest: Path) -> Path:
    """Write the MLflow model for the trainer's `model_dir` (model.pt + model.json) into `dest` (created):
    the trainer's two files at its top, MLflow's files beside them. Returns dest."""
    import json

    from mlflow.models import Model

    from trainer.inference import read_card

    model_dir, dest = Path(model_dir), Path(dest)
    card = read_card(model_dir)
    trainer_pkg = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        code = Path(tmp) / "trainer"
        # the package alone, without caches: what the served model imports
        shutil.copytree(trainer_pkg, code, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        mlflow.pyfunc.save_model(
            str(dest), python_model=PlatbenchImageModel(), artifacts={ARTIFACT: str(model_dir)},
            code_paths=[str(code)], signature=signature(), input_example=input_example(card),
            pip_requirements=requirements(),
            metadata={"platbench_preset": card["preset"], "classes": json.dumps(card["classes"])})
    # MLflow copied the trainer's directory into artifacts/model_dir/; keep the trainer's layout instead
    # (model.pt + model.json at the top, one copy of the weights) and point the artifact at the top: the
    # pyfunc flavor resolves each artifact as <model path>/<its "path">.
    mlmodel = Model.load(str(dest))
    artifact = mlmodel.flavors["python_function"]["artifacts"][ARTIFACT]
    copied = dest / artifact["path"]
    for entry in sorted(copied.iterdir()):
        shutil.move(str(entry), str(dest / entry.name))
    shutil.rmtree(dest / "artifacts")
    artifact["path"] = "."
    artifact.pop("uri", None)  # where it was copied from: a path on the machine that logged it
    mlmodel.save(str(dest / "MLmodel"))
    return dest
