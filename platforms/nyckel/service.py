"""Nyckel image classification through the `nyckel` package (platforms/core/service.py drives it).

- OAuth2 client credentials (POST /connect/token, grant_type client_credentials) and a bearer token on every
  call: nyckel.Credentials (https://www.nyckel.com/docs, "Authentication"; https://pypi.org/project/nyckel/).
- A function with input Image and output Classification, labels, and annotated samples (POST
  /v1/functions, /v1/functions/{id}/labels, /v1/functions/{id}/samples): ImageClassificationFunction.create and
  create_samples, which resize to at most 1,024 px and send every image as a JPEG data URI.
- Nyckel trains by itself whenever samples change, cross-validating on every annotated sample, then serves a
  final model trained on all of them (https://www.nyckel.com/docs/developer-platform/training-and-accuracy/):
  so the service gets all of each class's --per-class images, no validation split of ours. It predicts "with
  as few as 2 samples per label" (https://www.nyckel.com/docs/concepts/samples/): the minimum refused here.
- Trained: the SDK's own test, has_trained_model (not isTraining, every sample predicted, state Browsing or
  Tuning). Nyckel reports no training timestamps, so the training time is platbench's clock from the last
  sample's upload to the first poll that finds the function trained (poll_seconds bounds the error).
- Invoke: POST /v1/functions/{id}/invoke {"data": <data URI>} → {labelName, labelId, confidence}: the best label
  only, so no top-5. Sent with the SDK's own body transformer and bearer token, but without the SDK's
  parallel poster, which retries five times by itself and would hide every error from the load tool.
- Delete: DELETE /v1/functions/{id} removes the function with its labels and samples.
"""
from __future__ import annotations

import base64
import os
import time
from datetime import datetime, timezone
from typing import Any, Iterator, Optional

from pydantic import Field

from platforms.core import pricing
from platforms.core.api import Job, PlanStep
from platforms.core.names import unique_name
from platforms.core.sdk import require
from platforms.core.service import SPLIT_ALL, Service, ServiceCost, ServiceData, ServiceSettings, Trained, predictions
from platforms.core.transport import Payload, Reply, Target, ThreadedTransport, TransportError
from platforms.errors import UserError
from platforms.nyckel import SPEC
from platforms.nyckel.credentials import ID, SECRET, find

REGION = "global"  # Nyckel's plan has one price everywhere (prices.yaml)

SERVER = "https://www.nyckel.com"


class NyckelSettings(ServiceSettings):
    server_url: str = SERVER                  # the API's base URL (the SDK's own server_url setting)
    function: Optional[str] = None            # function name (default: platbench-<time>-<random>)
    poll_seconds: float = Field(2.0, gt=0, le=600)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat()


class NyckelService(Service):
    spec = SPEC
    settings_model = NyckelSettings
    cross_validates = True
    min_labels = 2
    min_per_label = 2
    formats = ("png", "jpeg")
    limits_source = "https://www.nyckel.com/docs/concepts/samples/"
    top_k_given = False

    def __init__(self, settings=None):
        super().__init__(settings)
        self._creds = None
        self.function_name: Optional[str] = None
        self.function_id: Optional[str] = None

    def credentials(self):
        if self._creds is None:
            nyckel = require("nyckel", SPEC.extra, "the Nyckel SDK (nyckel)")
            self._creds = nyckel.Credentials(os.environ[ID], os.environ[SECRET], server_url=self.parsed().server_url)
        return self._creds

    def _name(self) -> str:
        self.function_name = self.function_name or self.parsed().function or unique_name("platbench")
        return self.function_name

    # ------------------------------------------------------------------ before anything is created
    def preflight(self, job: Job) -> list[str]:
        super().preflight(job)
        found, where = find()
        return [] if found else [f"Nyckel credentials ({where})"]

    def check(self, job: Job, data: ServiceData) -> None:
        super().check(job, data)
        found, where = find()
        if not found:
            raise UserError(f"nyckel: no credentials: {where}")
        try:
            self.credentials().token  # one token request: wrong credentials are one line, before any upload
        except ValueError:  # the SDK's message carries the secret: not repeated here
            raise UserError(f"nyckel: {self.parsed().server_url}/connect/token refused the client credentials "
                            f"in {ID}/{SECRET}") from None
        self._name()

    def plan(self, job: Job) -> list[PlanStep]:
        cfg, name = self.parsed(), self._name()
        api = f"{cfg.server_url.rstrip('/')}/v1/functions"
        auth = '-H "Authorization: Bearer $TOKEN"'
        return [
            PlanStep("get an OAuth token with the client credentials",
                     f"curl -d grant_type=client_credentials -d client_id=${ID} -d client_secret=${SECRET} "
                     f"{cfg.server_url.rstrip('/')}/connect/token"),
            PlanStep(f"create the image classification function {name}",
                     f"curl {auth} -H 'Content-Type: application/json' -d '{{\"input\": \"Image\", \"output\": "
                     f"\"Classification\", \"name\": \"{name}\"}}' {api}"),
            PlanStep(f"post every selected image as an annotated sample ({SPLIT_ALL})",
                     f"curl {auth} -H 'Content-Type: application/json' -d '{{\"data\": \"data:image/jpeg;base64,…\", "
                     f"\"annotation\": {{\"labelName\": \"LABEL\"}}}}' {api}/FUNCTION_ID/samples"),
            PlanStep("wait until the function is trained (it trains by itself)"),
            PlanStep(f"evaluate the whole test set, then load test: {cfg.requests} invokes at {cfg.concurrency} "
                     "concurrent", f"curl {auth} -d '{{\"data\": \"…\"}}' {api}/FUNCTION_ID/invoke"),
            PlanStep("delete the function (its labels and samples go with it), always",
                     f"curl -X DELETE {auth} {api}/FUNCTION_ID"),
        ]

    # ------------------------------------------------------------------ the run
    def upload(self, data: ServiceData, say) -> dict[str, Any]:
        from nyckel import ImageClassificationFunction

        self.created.append(("function", self._name()))  # before the call: an interrupted create is found by name
        func = ImageClassificationFunction.create(self.function_name, self.credentials())
        self.function_id = func.function_id
        ids = func.create_samples([(str(x.path), x.label) for x in data.uploaded])
        if len(ids) != len(data.uploaded):  # the SDK only warns about a sample it could not post
            raise UserError(f"nyckel: {len(data.uploaded) - len(ids)} of {len(data.uploaded)} samples were not "
                            "accepted (see the warnings above)")
        self._uploaded_at = time.time()
        say(f"posted {len(ids)} samples to function {self.function_id}")
        return {"samples": len(ids), "encoding": "the SDK re-encodes every image as a JPEG data URI"}

    def train(self, data: ServiceData, say) -> Trained:
        from nyckel import ImageClassificationFunction

        cfg = self.parsed()
        func = ImageClassificationFunction(self.function_id, self.credentials())
        deadline = time.monotonic() + cfg.max_train_hours * 3600
        while not func.has_trained_model():
            if time.monotonic() > deadline:
                raise UserError(f"nyckel: not trained after {cfg.max_train_hours} h; the function is deleted")
            time.sleep(cfg.poll_seconds)
        done = time.time()
        return Trained(seconds=done - self._uploaded_at, started=_iso(self._uploaded_at), ended=_iso(done),
                       source=f"platbench's clock: last sample uploaded → first poll that finds the function "
                              f"trained (has_trained_model, every {cfg.poll_seconds:g} s); Nyckel reports no "
                              "training timestamps")

    def deploy(self, say) -> None:
        say("a Nyckel function serves as soon as it is trained: nothing to deploy")

    def target(self) -> Target:
        return Target(kind=self.name, name=self.function_id)

    def transport(self, concurrency: int, timeout_s: float) -> "NyckelTransport":
        return NyckelTransport(self.credentials(), self.function_id, concurrency, timeout_s)

    def delete(self, kind: str, name: str) -> Iterator[str]:
        """Every function of this run's name (so one whose create call was interrupted is found too)."""
        session = self.credentials().get_session()
        api = f"{self.parsed().server_url.rstrip('/')}/v1/functions"
        listed = session.get(api, timeout=60)
        listed.raise_for_status()
        for f in listed.json():
            if f.get("name") == name:
                r = session.delete(f"{api}/{f['id']}", timeout=60)
                yield f"function {f['id']} ({name})" + ("" if r.status_code in (200, 404)
                                                       else f": NOT deleted (HTTP {r.status_code})")

    def cost(self, trained: Optional[Trained]) -> Optional[ServiceCost]:
        """Nyckel's published plan (prices.yaml, entered by hand, unverified): training free, serving per invoke."""
        train = pricing.lookup(self.name, REGION, "function-training")
        invoke = pricing.per_request(self.name, REGION, "invoke")
        if train is None and invoke is None:
            return None
        basis = "; ".join(
            f"{p.sku} {p.usd_per_hour}/{'request' if p.section == 'request' else 'h'} ({p.source}, {p.date}, {p.status}: "
            "published plan, entered by hand)" for p in (train, invoke) if p)
        return ServiceCost(training_usd=train.usd_per_hour * trained.seconds / 3600 if train and trained else None,
                           endpoint_usd_per_hour=None, usd_per_request=invoke.usd_per_hour if invoke else None,
                           basis=basis)


class NyckelTransport(ThreadedTransport):
    """POST /v1/functions/{id}/invoke with the SDK's bearer token and image encoding, `concurrency` at a time in
    threads, no retries of its own (the load tool retries on resets and 429, and counts them)."""

    def __init__(self, credentials, function_id: str, concurrency: int, timeout_s: float):
        import requests
        from nyckel.functions.utils import ImageSampleBodyTransformer

        super().__init__(concurrency, "nyckel-invoke")
        self.creds, self.timeout = credentials, timeout_s
        self.url = f"{credentials.server_url}/v1/functions/{function_id}/invoke"
        self.encode = ImageSampleBodyTransformer()
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=concurrency, pool_maxsize=concurrency, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def call(self, payload: Payload) -> Reply:
        import requests

        uri = f"data:{payload.content_type};base64,{base64.b64encode(payload.body).decode()}"
        try:
            r = self.session.post(self.url, json={"data": self.encode(uri)}, timeout=self.timeout,
                                  headers={"Authorization": f"Bearer {self.creds.token}"})
        except requests.exceptions.Timeout as exc:
            raise TransportError("timeout", str(exc)) from None
        except requests.exceptions.ConnectionError as exc:
            kind = "refused" if "refused" in str(exc).lower() else "reset"
            raise TransportError(kind, str(exc)) from None
        if r.status_code != 200:
            return Reply(r.status_code, r.content, {})
        doc = r.json()  # the best label only
        return predictions([(doc.get("labelName"), doc.get("confidence"))], "nyckel invoke")

    async def close(self) -> None:
        await super().close()
        self.session.close()
