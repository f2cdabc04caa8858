"""platforms/core/container_env.py, run_tags.py, staging_plan.py: the parts every cloud launcher shares."""

from platforms.core import tracking
from platforms.core.container_env import container_env, pinned_digest
from platforms.core.pricing import Quote
from platforms.core.run_tags import image_tags, price_tags
from platforms.core.staging_plan import closing_steps, staging_steps

DIGEST = "sha256:" + "a" * 64


def test_the_container_env_names_the_platform_the_commit_and_the_image(monkeypatch):
    monkeypatch.setenv("PLATBENCH_GIT_COMMIT", "abc123")
    env = container_env("demo", {"PLATBENCH_IMAGE_ID": "sha256:" + "b" * 64}, digest=DIGEST, PLATBENCH_DATA="/d")
    assert env == {"PLATBENCH_PLATFORM": "demo", "PLATBENCH_GIT_COMMIT": "abc123", "PLATBENCH_IMAGE_DIGEST": DIGEST,
                   "PLATBENCH_IMAGE_ID": "sha256:" + "b" * 64, "PLATBENCH_DATA": "/d"}
    assert container_env("demo") == {"PLATBENCH_PLATFORM": "demo", "PLATBENCH_GIT_COMMIT": "abc123"}
    assert pinned_digest(f"r.example/platbench@{DIGEST}") == DIGEST
    assert pinned_digest("r.example/platbench:1") is None and pinned_digest(None) is None


def test_image_and_price_tags_hold_only_what_is_known():
    assert image_tags(DIGEST, "sha256:id") == {tracking.Tag.IMAGE_DIGEST: DIGEST, tracking.Tag.IMAGE_ID: "sha256:id"}
    assert image_tags(None) == {}
    assert price_tags(None) == {}
    tags = price_tags(Quote(1.5, (), basis="spot"))
    assert tags[tracking.Tag.PRICE_BASIS] == "spot" and tracking.Tag.PRICE_SOURCE in tags


def test_staging_steps_upload_shards_then_the_manifest_or_every_file(tmp_path):
    data = tmp_path / "my data"
    put = lambda a, b: f"cp {a} {b}"  # noqa: E731
    tree = lambda a, b: f"cp -r {a} {b}"  # noqa: E731
    sharded = staging_steps(data, "sharded", "s3://b/p", put, tree, reads="the job mounts it")
    assert [s.command for s in sharded] == [
        "cp SHARD.tar s3://b/p/shards/<sha256>.tar   # for each new shard",
        "cp platbench-manifest.json s3://b/p/datasets/<fingerprint>/platbench-manifest.json"]
    assert str(data) in sharded[0].title and sharded[1].title.endswith("the job mounts it")
    (naive,) = staging_steps(data, "naive", "s3://b/p", put, tree, unit="blob")
    assert naive.command == f"cp -r '{data}' s3://b/p/naive/my data/" and "own blob" in naive.title
    closing = closing_steps("get it", "region", "stop it")
    assert [s.command for s in closing] == ["get it", None, "stop it"]
