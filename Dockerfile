# syntax=docker/dockerfile:1
# The platbench image: one trainer for every platform. SageMaker starts it as `docker run IMAGE train`
# (and `serve` for endpoints); Vertex AI and Azure ML run the same `train` with arguments; compose runs
# `platbench launch local` in it. Data, outputs and the MLflow store come in through volumes.
#
# Base: the official PyTorch CUDA runtime image, pinned by digest. The digest was taken from public
# references (no registry is reachable from the development machines); BASE_IMAGE lets a build use
# another base, e.g. a local one where no registry can be reached.
ARG BASE_IMAGE=pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime@sha256:417bd75df6365104c283ea4c1651fb3530d9eb5a4c2fafa51943cff2a94e6385
FROM ${BASE_IMAGE}

ARG GIT_COMMIT=unknown
# SageMaker sets SAGEMAKER_BIND_TO_PORT (inference pipelines, multi-container endpoints) only for images
# that declare they honour it; `serve` does.
# https://docs.aws.amazon.com/sagemaker/latest/dg/inference-pipeline-real-time.html
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PLATBENCH_GIT_COMMIT=${GIT_COMMIT} \
    PLATBENCH_CACHE=/tmp/platbench-cache

WORKDIR /opt/platbench
COPY pyproject.toml README.md constraints.txt ./
COPY trainer ./trainer
COPY platforms ./platforms
# pip's index settings, for this build only, where the default index cannot be reached (a mirror, a proxy
# with its own CA): scripts/image-test passes the machine's own pip settings. Unset by default, so pip keeps
# its defaults; build args are not kept in the image's environment.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_CERT
ARG PIP_DEFAULT_TIMEOUT
# The base image's CUDA torch/torchvision satisfy the package's ranges and are kept; everything else is
# pinned by the same lock file CI uses.
RUN grep -vE '^(torch|torchvision|triton|nvidia-)' constraints.txt > /tmp/image-constraints.txt \
    && python -m pip install -c /tmp/image-constraints.txt . \
    && rm /tmp/image-constraints.txt

COPY docker/train docker/serve /usr/local/bin/

# Non-root user; the SageMaker paths exist and belong to it, so the image also runs under the SageMaker
# layout mounted by a local engine.
RUN useradd --create-home --uid 1000 --shell /bin/bash platbench \
    && mkdir -p /opt/ml/input/data/training /opt/ml/input/config /opt/ml/model /opt/ml/output/data \
                /opt/ml/checkpoints /work \
    && chown -R platbench:platbench /opt/ml /work
USER 1000:1000
WORKDIR /work
CMD ["train"]
