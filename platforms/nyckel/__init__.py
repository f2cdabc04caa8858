"""Nyckel image classification: an AutoML service (platforms/core/service.py) that trains as soon as labelled
samples arrive, cross-validating on them itself. Driven through the `nyckel` Python package (OAuth client
credentials, functions, labels, samples) and its documented REST invoke route (service.py)."""
from platforms.core.api import Feature, Kind, PlatformSpec

SPEC = PlatformSpec(
    name="nyckel",
    title="Nyckel image classification (nyckel SDK)",
    package=__name__,
    kind=Kind.SERVICE,
    launcher="service:NyckelService",
    extra="nyckel",
    sdk_modules=("nyckel",),
    credentials="credentials:find",
    guide="docs/first-run-services.md",
    lacks={
        Feature.ENDPOINTS: "serves only the function it trained itself: evaluated and load-tested inside "
                           "`platbench launch nyckel`, never our model.pt",
        Feature.GPU: "the service picks its own hardware",
        Feature.SPOT: "no spot or preemptible training",
        Feature.MULTI_NODE: "the service decides how training is spread",
        Feature.BILLING: "no price per hour applies: Nyckel charges nothing to train and a subscription per invoke "
                         "(AutoML study of 2023-05-31); no per-invoke price could be confirmed "
                         "(https://www.nyckel.com/pricing is not in the stored copies), so none is guessed",
    },
)
