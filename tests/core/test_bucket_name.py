"""S3's bucket naming rules, once for every platform on AWS (platforms/clouds/aws/bucket_name.py): the
README's old placeholder `bucket=B` was refused by `launch sagemaker` but taken by rekognition and by the
SageMaker endpoint, to fail only at the first S3 call."""
from __future__ import annotations

import pytest
from conftest import assert_one_line_error
from stand_in.cli import platbench_here

from platforms.clouds.aws.bucket_name import bucket_problem


@pytest.mark.parametrize("name, broken", [
    ("my-bucket", None), ("a.b-c.9", None), ("abc", None), ("x" * 63, None),
    ("B", "3–63"), ("ab", "3–63"), ("x" * 64, "3–63"), ("My-Bucket", "lower-case"), ("-abc", "starting"),
    ("abc-", "ending"), ("a_b_c", "lower-case"), ("a..b", "two periods"), ("192.168.5.4", "IP address"),
])
def test_the_rules_of_the_s3_page(name, broken):
    why = bucket_problem(name)
    assert (why is None) if broken is None else (broken in why), why


@pytest.mark.parametrize("command", [
    ("launch", "rekognition", "--data", "DATA", "--per-class", "20"),
    ("launch", "sagemaker", "--data", "DATA"),
    ("endpoint", "sagemaker", "--model-dir", "DATA"),
])
def test_every_aws_platform_refuses_a_bad_bucket_in_one_line(command, color_data, tmp_path):
    args = [str(color_data) if a == "DATA" else a for a in command]
    proc = platbench_here(*args, "--set", "bucket=B", "--dry-run", cwd=tmp_path)
    assert_one_line_error(proc)
    assert "not a valid S3 bucket name: 1 characters (3–63)" in proc.stderr
