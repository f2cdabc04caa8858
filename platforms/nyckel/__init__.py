"""Nyckel image classification: an AutoML service (platforms/core/service.py) that trains as soon as labelled
samples arrive, cross-validating on them itself. Driven through the `nyckel` Python package (OAuth client
credentials, functions, labels, samples) and its documented REST invoke route (service.py)."""
from platforms.core.api import SERVICE_LACKS, Feature, Kind, PlatformSpec

SPEC = PlatformSpec(
    name="nyckel", kind=Kind.SERVICE, title="Nyckel image classification (nyckel SDK)",
    launcher="service:NyckelService", sdk_modules=("nyckel",), guide="docs/first-run-services.md",
    lacks={
        Feature.ENDPOINTS: "serves only the function it trained itself: evaluated and load-tested inside "
                           "`platbench launch nyckel`, never our model.pt", **SERVICE_LACKS,
        Feature.BILLING: "no bill per run: Nyckel charges nothing to train and a subscription per invoke; the cost is "
                         "the invokes sent × the published plan's per-invoke price (prices.yaml, entered by hand, "
                         "unverified: https://www.nyckel.com/pricing is not in the stored copies), the tier's monthly "
                         "fee not counted",
    },
)
