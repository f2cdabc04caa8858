"""platforms/core/names.py: unique names cut to each platform's limit, never through their unique suffix."""
import re
from datetime import datetime, timezone

from platforms.core.names import DEFAULT, SHORT_STAMP, NameRule, unique_name


def test_a_long_stem_is_cut_never_the_stamp_and_suffix_and_never_left_ending_in_a_dash():
    rule = NameRule(63)
    for n in range(30, 80):
        stem = ("resnet-" * 12)[:n]
        names = {rule.unique(stem) for _ in range(3)}
        for name in names:
            assert len(name) <= 63 and rule.fits(name), name
            assert re.search(r"-\d{8}-\d{6}-[0-9a-f]{4}$", name), name
            assert "--" not in name


def test_names_made_in_the_same_second_differ_by_their_random_suffix():
    """Four hex digits: 200 names of one second share a suffix about 0.3 times (birthday bound), so a
    handful of equal pairs would mean the suffix is not random."""
    now = datetime(2026, 12, 6, 8, 30, 5, tzinfo=timezone.utc)
    names = [NameRule(63).unique("platbench", now=now) for _ in range(200)]
    assert len(set(names)) >= 195


def test_the_stamp_is_utc_and_the_name_reads_stem_stamp_suffix():
    now = datetime(2026, 12, 6, 8, 30, 5, tzinfo=timezone.utc)
    name = NameRule(63).unique("platbench-resnet18", now=now)
    assert re.fullmatch(r"platbench-resnet18-20261206-083005-[0-9a-f]{4}", name)
    assert re.fullmatch(r"platbench-resnet18-\d{8}-\d{6}-[0-9a-f]{4}", unique_name("platbench-resnet18"))


def test_characters_outside_the_rule_become_single_dashes_and_letters_are_lowered_where_asked():
    rule = NameRule(40, chars="a-z0-9", lower=True, letter_first=True, repeat_dash=False, stamp=SHORT_STAMP)
    name = rule.unique("PB_ResNet.18  x")
    assert re.fullmatch(r"pb-resnet-18-x-\d{10}-[0-9a-f]{4}", name), name
    assert rule.fits(name)
    assert rule.unique("9lives").startswith("pb-9lives-")  # a letter first
    assert rule.unique("").startswith("pb-") and rule.fits(rule.unique(""))
    assert len(rule.unique("x" * 100)) == 40


def test_the_rule_checks_given_names_as_the_platform_does():
    sagemaker = NameRule(63)
    assert sagemaker.fits("a--b") and sagemaker.fits("A1") and sagemaker.fits("r" * 63)
    assert not sagemaker.fits("r" * 64) and not sagemaker.fits("-a") and not sagemaker.fits("a-")
    assert not sagemaker.fits("a_b") and not sagemaker.fits("")
    apolo = NameRule(40, chars="a-z0-9", lower=True, letter_first=True, repeat_dash=False)
    assert apolo.fits("pb-job-1") and not apolo.fits("pb--job") and not apolo.fits("1pb") and not apolo.fits("Pb")


def test_no_room_for_a_stem_leaves_the_suffix_alone():
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", NameRule(20).unique("platbench"))
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", DEFAULT.unique("---"))


def test_the_plan_placeholder_names_the_stamp_it_will_use():
    assert NameRule(63).placeholder("platbench-resnet18") == "platbench-resnet18-YYYYMMDD-HHMMSS-XXXX"
    assert NameRule(40, lower=True, chars="a-z0-9", stamp=SHORT_STAMP).placeholder("pb-ResNet18") == \
        "pb-resnet18-MMDDHHMMSS-XXXX"


def test_a_refusal_names_the_setting_the_value_and_the_rule():
    rule = NameRule(40, chars="a-z0-9", lower=True, letter_first=True, repeat_dash=False, min_len=3,
                    title="a valid Apolo job name", hint="3-40 lower-case letters, digits and dashes")
    assert rule.refusal("job_name", "Bad_Name") == ("job_name 'Bad_Name' is not a valid Apolo job name "
                                                    "(3-40 lower-case letters, digits and dashes)")
    assert rule.refusal("job_name", "ab") is not None and rule.refusal("job_name", "abc") is None
    assert rule.refusal("job_name", None) is None
    assert NameRule(63).refusal("run_name", "no spaces") == "run_name 'no spaces' is not valid"
