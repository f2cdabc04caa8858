"""Apolo (formerly neu.ro, the platform platbench's original comparison was made on): jobs from the
platbench image with a resource preset (train.py), an HTTP job as the endpoint (endpoint.py), staging into
platform storage `storage://` (storage.py), all through the async apolo-sdk (session.py), and its price
basis (prices.yaml: Apolo meters credits, prices.yaml says why it holds no USD figure).
Needs `pip install 'platbench[apolo]'`."""
from platforms.core.api import Feature, PlatformSpec

SPEC = PlatformSpec(
    name="apolo", title="Apolo (formerly neu.ro) job from a resource preset (apolo-sdk)",
    launcher="train:ApoloPlatform", endpoint="endpoint:ApoloEndpoint", stores={"storage": "storage:ApoloStore"},
    sdk_modules=("apolo_sdk",),
    lacks={
        Feature.MULTI_NODE: ("not built: one job on one preset"
                             " (the trainer runs multi-node under torchrun; this launcher does not start several jobs)"),
        Feature.BILLING: "Apolo meters credits per preset-hour (reported per job), not a public USD price: "
                         "--set usd_per_credit=… converts with your organization's credit price",
    },
)
