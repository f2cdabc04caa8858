"""SkyPilot's client, beside the job's own calls (jobs.py): the SDK imported on demand, its API server's
health, the task through SkyPilot's own checks and its optimizer before anything is uploaded, and the
best-effort calls of a teardown (a request cancelled, the jobs controllers not up).
https://docs.skypilot.co/en/latest/reference/api.html"""
from __future__ import annotations

import copy
import re

from platforms.core.cloud_job import say
from platforms.errors import UserError
from platforms.skypilot import SPEC


def sky():
    from platforms.core.sdk import require

    return require("sky", SPEC.extra, "SkyPilot")


def validated_task(config: dict):
    """The task through SkyPilot's own checks: its YAML schema, then its loader (which parses resources,
    accelerators and storage mounts); a refusal is one line."""
    mod = sky()
    from sky.utils import common_utils, schemas

    try:
        common_utils.validate_schema(config, schemas.get_task_schema(), "Invalid task YAML: ")
        task = mod.Task.from_yaml_config(copy.deepcopy(config))  # the loader pops keys from what it reads
        for storage in task.storage_mounts.values():
            # the source check the launch runs when it constructs the storage (Storage.construct), offline:
            # a MOUNT source below the bucket was refused only once the launch had reached the API server
            type(storage)._validate_source(storage.source, storage.mode, storage.sync_on_reconstruction)
        return task
    except Exception as exc:  # noqa: BLE001 - ValueError, InvalidSkyPilotConfigError, StorageSpecError …
        raise UserError(f"skypilot: the task is refused: {str(exc).strip().splitlines()[0]}") from None


def api_server() -> str:
    """The SkyPilot API server every SDK call goes through, healthy (a local one is started if the endpoint
    is local, as SkyPilot's client does itself), or one line saying why not."""
    sky()
    from sky.server import common as server_common

    url = server_common.get_server_url()
    try:
        server_common.check_server_healthy_or_start_fn()
    except Exception as exc:  # noqa: BLE001 - ApiServerConnectionError, RuntimeError (local start failed)
        why = ("the local server did not start (~/.sky/api_server/server.log; SkyPilot 0.9's server fails "
               "with this lock's FastAPI): deploy one and run `sky api login -e URL`"
               if server_common.is_api_server_local() else str(exc).strip().splitlines()[0])
        raise UserError(f"skypilot: no SkyPilot API server at {url}: {why}") from None
    return url


def feasible(task, accelerators: str, cloud: str) -> None:
    """SkyPilot's optimizer, on the API server, looks for the task's resources among the enabled clouds'
    catalogs (`sky.optimize`) before anything is uploaded: an accelerator the cloud does not offer, or a
    cloud not enabled, is one line here instead of a failed launch after the upload."""
    mod = sky()
    from sky.utils import dag_utils

    try:
        mod.get(mod.optimize(dag_utils.convert_entrypoint_to_dag(task)))
    except (mod.exceptions.ResourcesUnavailableError, mod.exceptions.NoCloudAccessError) as exc:
        why = re.sub("\x1b\\[[0-9;]*m", "", " ".join(str(exc).split()))  # one line, without colour codes
        raise UserError(f"skypilot: SkyPilot finds no {accelerators} on {cloud}: {why[:300]}") from None


def cancel_request(request_id: str) -> None:
    """Stop a request on the API server (`sky api cancel`); a request already ended is left as it is."""
    mod = sky()
    try:
        mod.get(mod.api_cancel(request_id, silent=True))
    except Exception as exc:  # noqa: BLE001 - the teardown that follows must still run
        say(f"could not cancel SkyPilot request {request_id} (run `sky api cancel {request_id}`): {exc}")


def not_up_controllers() -> list[str]:
    """SkyPilot's jobs controllers (clusters named sky-jobs-controller-…) that are not UP, from `sky status`."""
    mod = sky()
    try:
        records = mod.get(mod.status(all_users=False))
    except Exception:  # noqa: BLE001 - only for the message of a teardown already in trouble
        return []
    return [r["name"] for r in records if r["name"].startswith("sky-jobs-controller-")
            and getattr(r["status"], "value", r["status"]) != "UP"]
