# syntax=docker/dockerfile:1
# The platbench image: one trainer for every platform. SageMaker starts it as `docker run IMAGE train`
# (and `serve` for endpoints); Vertex AI and Azure ML run the same `train` with arguments; compose runs
# `platbench launch local` in it. Data, outputs and the MLflow store come in through volumes.
#
# One software stack: the image installs exactly the lock (constraints.txt) that native runs install
# (scripts/setup), torch and torchvision included, so a container run and a native run differ only in where
# they run. The registry's torch/torchvision are CUDA builds whose nvidia-* wheels (all pinned in the lock)
# bring the CUDA runtime, cuDNN and NCCL: the base needs no CUDA of its own, the host only an NVIDIA driver
# for the lock's CUDA major (CUDA 13.x: driver >= 580,
# https://docs.nvidia.com/deploy/cuda-compatibility/minor-version-compatibility.html).
#
# Base: the official Python image for the Python minor the lock was frozen on (3.11, LOCK_PYTHON below),
# Debian bookworm, pinned by its multi-platform index digest. That digest is the one docker-library's
# repo-info records for python:3.11-slim-bookworm (repos/python/remote/3.11-slim-bookworm.md at commit
# 33a22f41ac7bf613bc03380b0317536a9a7fb5e8: Python 3.11.16, built 2026-08-25); it was read there, not pulled
# (no registry is reachable from the development machines). BASE_IMAGE lets a build use another base with
# the same Python minor, e.g. scripts/image-test's local stand-in (docker/base/Dockerfile).
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b
FROM ${BASE_IMAGE}

# SageMaker sets SAGEMAKER_BIND_TO_PORT (inference pipelines, multi-container endpoints) only for images
# that declare they honour it; `serve` does.
# https://docs.aws.amazon.com/sagemaker/latest/dg/inference-pipeline-real-time.html
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true
# What the former base (the official PyTorch image) declared for the NVIDIA runtime, kept so platforms that
# inject GPUs by runtime hook rather than `--gpus` still do: all GPUs, compute + nvidia-smi, and the driver
# libraries where GKE-style hosts (Vertex AI) mount them.
# https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/docker-specialized.html
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PLATBENCH_CACHE=/tmp/platbench-cache

# A C compiler, as the former base had: Triton builds its kernel launchers with it the first time
# `--compile` runs on a GPU. Versions come from the pinned base's Debian release (stable point releases
# replace package versions in the archive, so exact apt pins would break later builds).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

# pip's index settings, for this build only, where the default index cannot be reached (a mirror, a proxy
# with its own CA): scripts/image-test passes the machine's own pip settings, and the same for uv, which reads
# no pip settings (UV_DEFAULT_INDEX, UV_INDEX, UV_FIND_LINKS, SSL_CERT_FILE, UV_HTTP_TIMEOUT:
# scripts/image/pip_mirror.py). Unset by default, so pip and uv keep their defaults; build args are not kept
# in the image's environment.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_CERT
ARG PIP_DEFAULT_TIMEOUT
ARG UV_DEFAULT_INDEX
ARG UV_INDEX
ARG UV_FIND_LINKS
ARG SSL_CERT_FILE
ARG UV_HTTP_TIMEOUT
# How uv installs here, for this build only: byte-code compiled, as pip does (the image runs with
# PYTHONDONTWRITEBYTECODE, so nothing would cache it later); no cache left in a layer; the best match over all
# indexes, as pip takes it (uv's default takes the first index that has a package). Into the `python` on PATH,
# named (--python): uv's --system would pass over the stand-in base's venv.
ARG UV_COMPILE_BYTECODE=1
ARG UV_NO_CACHE=1
ARG UV_INDEX_STRATEGY=unsafe-best-match
# The Python minor constraints.txt was frozen on: a base with another one fails here, before installing.
ARG LOCK_PYTHON=3.11

WORKDIR /opt/platbench
# Every install below goes through the lock itself (tests/test_container.py checks it). The heavy part
# (torch, torchvision, Lightning: gigabytes) is its own layer, rebuilt only when the lock changes; the same
# pinned pip on any base, so the stand-in base installs the way the real one does. uv (pinned in the lock)
# installs the packages, as scripts/setup does: it downloads and unpacks the wheels in parallel, minutes
# less on a cold build than pip, same versions. It is installed with pip into /tmp/uv for each install and
# removed after it, so the image holds no uv.
COPY constraints.txt ./
RUN python -c "import sys; v = '%d.%d' % sys.version_info[:2]; sys.exit(0 if v == '${LOCK_PYTHON}' else f'Python {v} in the base; the lock is for ${LOCK_PYTHON}')" \
    && python -m pip install pip==26.3 \
    && python -m pip install -c constraints.txt --target /tmp/uv uv \
    && /tmp/uv/bin/uv pip install -c constraints.txt torch torchvision lightning --python "$(command -v python)" \
    && rm -rf /tmp/uv
COPY pyproject.toml README.md ./
COPY trainer ./trainer
COPY platforms ./platforms
# Then the package and the rest of its dependencies, with what each platform's serving contract needs
# beyond the core: the `gcs` extra (google-cloud-storage), since Vertex AI hands `serve` its model as a
# gs:// URI in AIP_STORAGE_URI and mounts nothing
# (https://cloud.google.com/vertex-ai/docs/predictions/custom-container-requirements, "Model artifacts"),
# and the `onnx` extra, so `serve --runtime onnx` (PLATBENCH_SERVE_RUNTIME=onnx) works in every container;
# SageMaker unpacks model.tar.gz into /opt/ml/model and needs no SDK in the container. Then a check that
# nothing outside the lock came in:
# pip freeze (which leaves out pip, setuptools and wheel) must print only lines of constraints.txt.
# setuptools, which torch requires at run time, is unpinned while the lock (made by pip freeze) lacks it:
# the base's satisfies torch and is kept.
RUN python -m pip install -c constraints.txt --target /tmp/uv uv \
    && /tmp/uv/bin/uv pip install -c constraints.txt ".[gcs,onnx]" --python "$(command -v python)" \
    && rm -rf /tmp/uv \
    && python -m pip check \
    && python -m pip freeze --exclude platbench > /tmp/installed.txt \
    && if grep -ivxFf constraints.txt /tmp/installed.txt; then \
         echo "the lines above are installed but not in constraints.txt" >&2; exit 1; \
       fi \
    && rm /tmp/installed.txt

COPY docker/train docker/serve /usr/local/bin/

# Last, so a new commit rebuilds nothing above.
ARG GIT_COMMIT=unknown
ENV PLATBENCH_GIT_COMMIT=${GIT_COMMIT}

# Who runs the image, per platform. SageMaker AI "expects all containers to run with root users" and mounts
# /opt/ml/model, /opt/ml/output and /opt/ml/checkpoints owned by root
# (https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html, "How SageMaker AI
# Runs Your Inference Image"; aws/sagemaker-python-sdk#4764 for training), so the image's default user is
# root. Vertex AI and Azure ML start the image's default user as well: their job and model container
# specifications have no user field (https://cloud.google.com/vertex-ai/docs/reference/rest/v1/CustomJobSpec#ContainerSpec,
# https://cloud.google.com/vertex-ai/docs/reference/rest/v1/ModelContainerSpec,
# https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command).
# Where a person runs it on their own machine (docker-compose.gpu.yml, `platbench launch docker`), it runs
# as the non-root user below (uid 1000, or the caller's uid), so the files it leaves are theirs.
# The SageMaker paths exist, owned by root as the service mounts them.
RUN useradd --create-home --uid 1000 --shell /bin/bash platbench \
    && mkdir -p /opt/ml/input/data/training /opt/ml/input/config /opt/ml/model /opt/ml/output/data \
                /opt/ml/checkpoints /work \
    && chown platbench:platbench /work
# hadolint ignore=DL3002
USER 0:0
WORKDIR /work
CMD ["train"]

# Last of all, so no layer above is rebuilt for it: a fresh id each `platbench image build` (it passes a
# uuid), recorded with the image ID in the project's .platbench/image.json. A container started from the
# project folder (docker compose run trainer) reads that record and takes the image ID only when the
# record's build id is this one (trainer/image_record.py): its identity with no variable to pass. Empty
# when built otherwise (`docker compose build`, `docker build`): then the run records no digest and
# `platbench check` says why.
ARG PLATBENCH_BUILD_ID=
LABEL org.platbench.build-id="${PLATBENCH_BUILD_ID}"
ENV PLATBENCH_BUILD_ID=${PLATBENCH_BUILD_ID}
