# syntax=docker/dockerfile:1.7
# The aidetect images. .github/workflows/image.yml builds and pushes them with buildx;
# tests/e2e/test_image.py builds both detector variants with podman and runs them.
#
#   docker buildx build -t aidetect:dev .                                  # detector, CPU torch (default)
#   docker buildx build --build-arg VARIANT=gpu \
#     --build-arg TORCH_INDEX_URL=https://pypi.org/simple -t aidetect-gpu:dev .   # detector, CUDA torch
#   docker buildx build --target mlflow -t mlflow:dev .                    # the MLflow registry server
#
# Both detector variants share one base: PyPI's Linux torch wheel carries its CUDA libraries and the
# node's NVIDIA runtime supplies the driver, so the GPU variant needs no CUDA base image.
#
# Build arguments choose the base and where torch comes from, so a machine without a registry builds
# too (the test does): PYTHON_IMAGE, any Debian-like image with python3.11 and its venv module (a
# debootstrapped bookworm will do); TORCH_FIND_LINKS, a folder holding the torch wheel, mounted into
# the build (`podman build -v /opt/wheels:/opt/wheels:ro --build-arg TORCH_FIND_LINKS=/opt/wheels`).

# python:3.11.11-slim-bookworm by digest (check with `docker buildx imagetools inspect`); bump tag and
# digest together.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:081075da77b2b55c23c088251026fb69a7b2bf92471e491ff5fd75c192fd38e5

FROM ${PYTHON_IMAGE} AS python-base
# PATH spelled out, not appended: an image made by `podman import` carries no PATH to append to.
# python3, not python: Debian's own interpreter (/usr/bin) has no `python`; python:slim has both.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# --- MLflow registry server: PostgreSQL backend, S3 (MinIO) artifacts ---
FROM python-base AS mlflow-build
ARG MLFLOW_VERSION=3.17.2
# The pip cache lives in a cache mount, never in a layer.
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -m venv /opt/venv \
    && pip install "mlflow==${MLFLOW_VERSION}" "psycopg2-binary==2.9.13" "boto3==1.44.8"

FROM python-base AS mlflow
RUN groupadd --system --gid 10001 mlflow \
    && useradd --system --uid 10001 --gid mlflow --home-dir /tmp --no-create-home --shell /usr/sbin/nologin mlflow
COPY --from=mlflow-build /opt/venv /opt/venv
USER 10001:10001
EXPOSE 5000
ENTRYPOINT ["mlflow"]
CMD ["server", "--host", "0.0.0.0", "--port", "5000"]

# --- detector: the dependency lists, read from pyproject.toml ---
# Copied on by content, so an edit elsewhere in pyproject.toml does not reinstall the dependencies.
FROM python-base AS requirements
WORKDIR /src
COPY pyproject.toml ./
# mlflow becomes mlflow-skinny, same version: the detector, the ingest job and the in-cluster ci steps
# are clients of the registry (tracking, registry, pyfunc and pytorch flavours, SQLAlchemy stores: all in
# skinny, with sqlalchemy and alembic from our own list). The full package adds only what the registry
# *server* needs (Flask, gunicorn, graphene, pyarrow: ~170 MB), and that runs from the mlflow target.
RUN python3 -c 'import re, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
base = [re.sub(r"^mlflow(?=[=<>~!; \[]|$)", "mlflow-skinny", d) for d in p["dependencies"]]; \
print("\n".join(base), file=open("base.txt", "w")); \
print("\n".join(p["optional-dependencies"]["qwen"]), file=open("qwen.txt", "w"))' \
    && grep -q '^mlflow-skinny' base.txt

# --- detector: the dependencies (rebuilt only when pyproject.toml or the torch source changes) ---
FROM python-base AS deps
# Where torch comes from: the PyTorch CPU index by default (no CUDA, ~10x smaller); the workflow's
# GPU build passes PyPI's index (its Linux wheel carries CUDA). TORCH_FIND_LINKS, when set, adds a
# folder of wheels: a local version such as 2.13.0+cpu sorts above an index's 2.13.0, so the
# folder's wheel wins while torch's own dependencies still come from the configured index.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_FIND_LINKS=""
WORKDIR /src
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -m venv /opt/venv \
    && if [ -n "${TORCH_FIND_LINKS}" ]; then \
         pip install --find-links "${TORCH_FIND_LINKS}" "torch==${TORCH_VERSION}"; \
       else \
         pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"; \
       fi
# The declared dependencies alone, so a code change reinstalls nothing. pyproject.toml pins torch to
# the version installed above, so pip keeps that build.
COPY --from=requirements /src/base.txt /src/qwen.txt ./
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --requirement base.txt
# VARIANT only from here on, so the cpu and gpu builds share the layers above. gpu adds the extra
# only the GPU tier needs (the Qwen stage).
ARG VARIANT=cpu
RUN --mount=type=cache,target=/root/.cache/pip \
    case "${VARIANT}" in \
      cpu) ;; \
      gpu) pip install --requirement qwen.txt ;; \
      *) echo "VARIANT must be cpu or gpu, not ${VARIANT}" >&2; exit 1 ;; \
    esac
# Nothing at run time reads these, and they are a fifth of the venv: test suites, C++ headers and test
# binaries (the image has no compiler to build extensions with), and the MLflow web UI (this image
# serves the detector; the mlflow target keeps the UI).
RUN find /opt/venv -depth -type d \( -name tests -o -name test \) -exec rm -rf {} + \
    && site=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
    && rm -rf "${site}/torch/include" "${site}/mlflow/server/js" \
    && find "${site}/torch/bin" -maxdepth 1 -type f -not -name torch_shm_manager -delete

# --- detector: the venv as it ships (a stage of its own: the build stage below still needs pip) ---
FROM deps AS venv
# torch's shared libraries keep their full symbol tables (~100 MB of libtorch_cpu.so alone); the
# dynamic symbols that loading needs stay. Only torch's: the auditwheel-patched libraries of numpy and
# scipy gain nothing from it, and strip can break patchelf'd files. binutils stays in this stage.
# pip goes too: nothing installs at run time, and the root file system is read-only in the pod.
# DL3008: binutils comes from the base's own suite and never reaches the runtime image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/* \
    && site=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
    && strip --strip-unneeded "${site}"/torch/lib/*.so* \
    && python3 -c 'import torch; assert float(torch.ones(3) @ torch.ones(3)) == 3.0' \
    && pip uninstall --yes pip

# --- detector: the project itself, into /opt/app (a small layer of its own in the runtime) ---
FROM deps AS build
ENV PYTHONPATH=/opt/app \
    PATH=/opt/app/bin:/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# .dockerignore lets only the packages in.
COPY . .
# The `--help` calls fail the build, not a pod, when a module the CLI imports at load is missing.
# DL3013: this installs the project itself; its dependencies are installed above.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-deps --target /opt/app . \
    && aidetect --help > /dev/null \
    && aidetect ci --help > /dev/null \
    && aidetect ingest --help > /dev/null

# --- detector: runtime, no compilers, no sources, not root ---
FROM python-base AS runtime
ARG VARIANT=cpu
LABEL org.opencontainers.image.title="aidetect detector (${VARIANT})" \
      org.opencontainers.image.description="LitServe detector: is this image AI-generated?" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 aidetect \
    && useradd --system --uid 10001 --gid aidetect --home-dir /var/lib/aidetect --no-create-home \
       --shell /usr/sbin/nologin aidetect \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/aidetect
COPY --from=venv /opt/venv /opt/venv
COPY --from=build /opt/app /opt/app
COPY LICENSE /usr/share/doc/aidetect/LICENSE
# AIDETECT_HOME is an emptyDir in the cluster, so the root filesystem can stay read-only.
ENV PYTHONPATH=/opt/app \
    PATH=/opt/app/bin:/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    AIDETECT_HOME=/var/lib/aidetect \
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
