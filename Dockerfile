# Image for Kubeflow Pipelines: every component of the compiled pipeline runs in it.
#   docker build -t YOUR_REGISTRY/digits-tfx:TAG .
#   .venv/bin/digits compile --target kubeflow --image YOUR_REGISTRY/digits-tfx:TAG --pipeline-root gs://...
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
COPY schema schema
COPY data data
# Editable, so configs.PROJECT_ROOT is /app, where data/ and schema/ are.
RUN uv pip install --system --no-cache --no-deps -e .
