"""The image tests run only under scripts/image-test, which starts a Docker engine, builds the image and sets
PLATBENCH_IT_IMAGE (tag), PLATBENCH_IT_DIGEST (its digest), PLATBENCH_IT_WORK (scratch space, readable by
the image's user) and DOCKER_HOST. Without them these files are not even collected, so the fast suite
(`pytest -q`) never depends on an engine."""
from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("PLATBENCH_IT_IMAGE") else ["test_*.py"]
