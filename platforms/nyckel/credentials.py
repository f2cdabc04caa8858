"""Where Nyckel's OAuth client credentials come from, looked up offline: NYCKEL_CLIENT_ID and
NYCKEL_CLIENT_SECRET (https://www.nyckel.com/console/keys issues them). They are read from the environment
only, never from --set, so a secret never lands in MLflow's params."""
from __future__ import annotations

import os

ID, SECRET = "NYCKEL_CLIENT_ID", "NYCKEL_CLIENT_SECRET"


def find() -> tuple[bool, str]:
    if os.environ.get(ID) and os.environ.get(SECRET):
        return True, f"environment ({ID})"
    return False, f"none found: set {ID} and {SECRET} (https://www.nyckel.com/console/keys)"
