# Image for Kubeflow Pipelines: every component of the compiled pipeline runs in it.
#   docker build -t REGISTRY/digits-tfx:TAG . && docker push REGISTRY/digits-tfx:TAG
#   .venv/bin/digits compile --target kubeflow --image REGISTRY/digits-tfx:TAG [--pipeline-root gs://...]
# (docs/kubeflow.md). Tasks run as the unprivileged user `digits` (uid 1000).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /app
COPY requirements/requirements.lock requirements/requirements.lock
RUN pip install --no-cache-dir uv \
 && uv pip install --system --no-cache --compile-bytecode -r requirements/requirements.lock

# Code and the bundled MNIST (the pipeline's default data root in the cluster is /app/data/mnist).
COPY setup.py README.md ./
COPY cli cli
COPY pipeline pipeline
COPY components components
COPY models models
COPY serving serving
COPY reports reports
COPY monitoring monitoring
COPY schema schema
COPY data data
# Editable, so configs.PROJECT_ROOT is /app, where data/ and schema/ are.
RUN uv pip install --system --no-cache --no-deps -e .

# The KFP launcher's local copies of minio://, s3:// and gs:// artifacts, and the state volume's mount
# point, writable by the task's user (the launcher runs as that user and cannot create folders in /).
RUN useradd --uid 1000 --create-home --home-dir /home/digits digits \
 && mkdir -p /minio /s3 /gcs /digits-state \
 && chown digits:digits /minio /s3 /gcs /digits-state
USER 1000
ENV HOME=/home/digits
