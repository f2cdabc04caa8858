"""platforms/core/cloud_settings.py: the fields every cloud job has, checked the same way everywhere."""
from typing import ClassVar

import pytest

from platforms.core.cloud_settings import CloudJobSettings, LocalMode, TimeLimit, poll_every
from platforms.core.names import NameRule
from platforms.core.settings import parse_settings
from platforms.errors import UserError


class Demo(CloudJobSettings, TimeLimit, LocalMode):
    JOB_NAME: ClassVar[NameRule] = NameRule(40, chars="a-z0-9", lower=True, letter_first=True,
                                            title="a valid demo job name", hint="3-40 of a-z, 0-9, -", min_len=3)
    MAX_RUN_LIMIT: ClassVar[int] = 24 * 3600
    poll_seconds: float = poll_every(5.0)
    region: str = "here"


def test_defaults_are_the_shared_ones_except_what_the_platform_declares():
    cfg = parse_settings(Demo, {}, "demo")
    assert (cfg.staging, cfg.prefix, cfg.max_run, cfg.local, cfg.poll_seconds) == ("sharded", "platbench", 4 * 3600,
                                                                                   False, 5.0)
    assert cfg.job_name is None and cfg.run_name is None
    assert cfg.run_key("job-1") == "job-1"
    assert parse_settings(Demo, {"run_name": "r1"}, "demo").run_key("job-1") == "r1"


@pytest.mark.parametrize("settings, message", [
    ({"job_name": "Bad_Name"}, "demo: job_name 'Bad_Name' is not a valid demo job name (3-40 of a-z, 0-9, -)"),
    ({"run_name": "no spaces"}, "demo: run_name 'no spaces' is not valid"),
    ({"max_run": str(24 * 3600 + 1)}, "demo: max_run: Input should be less than or equal to 86400"),
    ({"max_run": "10"}, "demo: max_run: Input should be greater than or equal to 60"),
    ({"poll_seconds": "0"}, "demo: poll_seconds: Input should be greater than 0"),
    ({"staging": "zip"}, "demo: staging: Input should be 'sharded' or 'naive'"),
    ({"prefix": "../up"}, "demo: prefix '../up' is not a plain relative path"),
    ({"colour": "blue"}, "demo: unknown setting 'colour'; valid: local, max_run, job_name, run_name, staging, "
                         "prefix, poll_seconds, region"),
])
def test_bad_values_are_one_line_naming_the_setting(settings, message):
    with pytest.raises(UserError) as err:
        parse_settings(Demo, settings, "demo")
    assert str(err.value) == message


def test_a_platform_without_a_time_limit_or_local_mode_has_neither_setting():
    class Bare(CloudJobSettings):
        pass

    for key in ("max_run", "local"):
        with pytest.raises(UserError, match=f"unknown setting '{key}'"):
            parse_settings(Bare, {key: "1"}, "bare")
