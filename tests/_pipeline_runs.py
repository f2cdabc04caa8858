"""aws-azure's pipeline runs recorded as pipeline.run_platform records them, of batches whose bytes and seconds are
known: what the figures are computed from, without training or a server."""
from __future__ import annotations

from platforms.reproduce import pipeline
from platforms.reproduce.pipeline_plan import ENDPOINT_TAG, LOCAL_SERVER


def record_batches(platform: str, batches: list, *, size: int = 1024, endpoint: str = LOCAL_SERVER,
                   usd_per_hour: float | None = None, **tags) -> str:
    """One finished pipeline run of `batches` (each batch's figures a step) with its batch size and endpoint."""
    with pipeline.recorded("aws-azure", platform, "small", {"batch_images": size}) as tr:
        tr.tags({ENDPOINT_TAG: endpoint, **tags})
        if usd_per_hour is not None:
            tr.metrics({"endpoint_usd_per_hour": usd_per_hour})
        for i, b in enumerate(batches):
            tr.metrics(b.figures(), step=i)
        pipeline.finish(tr, batches)
        return tr.run_id
