"""The endpoint teardown template (platforms/core/endpoint.py, platforms/core/teardown.py) that every platform's
endpoint uses: newest first, 'already gone' counted as deleted, one failure never stopping the rest, one error
at the end naming what is left, Ctrl-C held off while the deletes run, safe to call twice. A platform here is
a small subclass with its own delete calls, as each platform's endpoint.py writes them."""
from __future__ import annotations

import signal

import pytest
from pydantic import BaseModel, ConfigDict

from platforms.core.endpoint import Endpoint
from platforms.errors import UserError


class Gone(Exception):
    pass


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: str = "here"
    name: str = "pb-teardown"


class PlainEndpoint(Endpoint):
    """Deletes by calling `fail` for what should fail; records the handler Ctrl-C had during each delete."""

    platform = "plain"
    settings_model = Settings

    def __init__(self, fail: dict[str, Exception]):
        super().__init__({})
        self.fail, self.calls, self.handlers, self.released_n = fail, [], [], 0

    def delete(self, kind: str, name: str) -> None:
        self.calls.append(name)
        self.handlers.append(signal.getsignal(signal.SIGINT))
        if name in self.fail:
            raise self.fail[name]

    def already_gone(self, exc: Exception) -> bool:
        return isinstance(exc, Gone)

    def released(self) -> None:
        self.released_n += 1

    target = cost = plan = check = deploy = transport = attach = None


def test_newest_first_already_gone_counts_and_nothing_is_left_to_retry():
    ep = PlainEndpoint({"model-a": Gone("no such model")})
    ep.created = [("bucket object", "obj"), ("model", "model-a"), ("endpoint", "ep-a")]
    assert ep.teardown() == ["endpoint ep-a", "model model-a (already gone)", "bucket object obj"]
    assert ep.calls == ["ep-a", "model-a", "obj"] and ep.created == [] and ep.released_n == 1
    assert set(ep.handlers) == {signal.SIG_IGN}  # Ctrl-C held while deleting
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    assert ep.teardown() == [] and "teardown_s" in ep.timings  # safe to call twice


def test_a_failed_delete_does_not_stop_the_rest_and_one_error_names_what_is_left():
    ep = PlainEndpoint({"ep-a": RuntimeError("throttled\nsecond line"), "obj": ValueError()})
    ep.created = [("bucket object", "obj"), ("model", "model-a"), ("endpoint", "ep-a")]
    with pytest.raises(UserError) as err:
        ep.teardown()
    assert ep.calls == ["ep-a", "model-a", "obj"] and ep.created == [] and ep.released_n == 1
    assert str(err.value) == ("plain endpoint: could not delete endpoint ep-a: throttled; bucket object obj: "
                              "ValueError — delete them by hand to stop the charges")
