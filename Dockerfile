# syntax=docker/dockerfile:1.7
# The aidetect images, built by .github/workflows/image.yml (buildx); nothing here is built locally.
#
#   docker buildx build --build-arg VARIANT=cpu -t aidetect:dev .          # detector, CPU torch (default)
#   docker buildx build --build-arg VARIANT=gpu -t aidetect-gpu:dev .      # detector, CUDA torch
#   docker buildx build --target mlflow -t mlflow:dev .                    # the MLflow registry server
#
# Both detector variants share one base: PyPI's Linux torch wheel carries its CUDA libraries and the
# node's NVIDIA runtime supplies the driver, so the GPU variant needs no CUDA base image.

# python:3.11.11-slim-bookworm by digest (check with `docker buildx imagetools inspect`); bump tag and
# digest together.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:081075da77b2b55c23c088251026fb69a7b2bf92471e491ff5fd75c192fd38e5

FROM ${PYTHON_IMAGE} AS python-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# --- MLflow registry server: PostgreSQL backend, S3 (MinIO) artifacts ---
FROM python-base AS mlflow-build
ARG MLFLOW_VERSION=3.17.2
RUN python -m venv /opt/venv \
    && pip install "mlflow==${MLFLOW_VERSION}" "psycopg2-binary==2.9.13" "boto3==1.44.8"

FROM python-base AS mlflow
RUN groupadd --system --gid 10001 mlflow \
    && useradd --system --uid 10001 --gid mlflow --home-dir /tmp --no-create-home --shell /usr/sbin/nologin mlflow
COPY --from=mlflow-build /opt/venv /opt/venv
USER 10001:10001
EXPOSE 5000
ENTRYPOINT ["mlflow"]
CMD ["server", "--host", "0.0.0.0", "--port", "5000"]

# --- detector: build the virtualenv ---
FROM python-base AS build
# cpu: torch from the PyTorch CPU index (no CUDA, ~10x smaller); gpu: torch from PyPI (CUDA) and the
# extra only the GPU tier needs (qwen).
ARG VARIANT=cpu
ARG TORCH_VERSION=2.13.0
WORKDIR /src
RUN python -m venv /opt/venv \
    && case "${VARIANT}" in \
         cpu) pip install --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}" ;; \
         gpu) pip install "torch==${TORCH_VERSION}" ;; \
         *) echo "VARIANT must be cpu or gpu, not ${VARIANT}" >&2; exit 1 ;; \
       esac
# Sources last, so a code change does not reinstall torch. .dockerignore lets only the package in.
COPY . .
# `data` in both: the ingest CronJob runs the CPU image and needs the PostgreSQL and S3 clients.
# DL3013: this installs the project itself; its dependencies are pinned in pyproject.toml.
# hadolint ignore=DL3013
RUN if [ "${VARIANT}" = gpu ]; then extras="[data,qwen]"; else extras="[data]"; fi \
    && pip install ".${extras}" \
    && aidetect --help > /dev/null

# --- detector: runtime, no compilers, no sources, not root ---
FROM python-base AS runtime
ARG VARIANT=cpu
LABEL org.opencontainers.image.title="aidetect detector (${VARIANT})" \
      org.opencontainers.image.description="LitServe detector: is this image AI-generated?"
RUN groupadd --system --gid 10001 aidetect \
    && useradd --system --uid 10001 --gid aidetect --home-dir /var/lib/aidetect --no-create-home \
       --shell /usr/sbin/nologin aidetect \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/aidetect
COPY --from=build /opt/venv /opt/venv
# AIDETECT_HOME is an emptyDir in the cluster, so the root filesystem can stay read-only.
ENV AIDETECT_HOME=/var/lib/aidetect \
    HOME=/var/lib/aidetect \
    AIDETECT_HOST=0.0.0.0 \
    AIDETECT_PORT=8000
USER 10001:10001
WORKDIR /var/lib/aidetect
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=120s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/livez', timeout=2)"]
ENTRYPOINT ["aidetect"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
