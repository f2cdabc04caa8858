"""Databricks: a one-time Jobs run (runs/submit) on a new GPU job cluster running the trainer as a wheel
library in the Databricks ML runtime (train.py), the dataset staged into a Unity Catalog volume through the
Files API (storage.py, scheme `dbfs://catalog.schema.volume/…`), the submitted run emulated on this machine
(emulator.py), Model Serving endpoints from a Unity Catalog model version (endpoint.py), offline credential lookup (credentials.py) and its price table (prices.yaml).
Needs `pip install 'platbench[databricks]'`."""
from platforms.core.api import Feature, PlatformSpec

SPEC = PlatformSpec(
    name="databricks", title="Databricks Jobs one-time run on a GPU job cluster (databricks-sdk)",
    launcher="train:DatabricksPlatform", endpoint="endpoint:DatabricksEndpoint", stores={"dbfs": "storage:VolumeStore"},
    sdk_modules=("databricks.sdk",),
    lacks={
        Feature.MULTI_NODE: ("not built: a single-node job cluster"
                             " (num_workers 0; the trainer runs multi-node under torchrun, this launcher does not ask for workers)"),
        Feature.BILLING: "the Jobs API reports no billed DBUs per run (system.billing.usage does, hours later); "
                         "cost is the run's cluster seconds x (DBU rate x DBU price + the VM's list price)",
    },
)
