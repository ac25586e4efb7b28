# fedheads image: the API, the Celery worker and the CLI (entrypoint `fedheads`).
#
#   docker build -t fedheads .                         # CPU: python:3.11-slim + torch 2.13.0 CPU build
#   docker build -t fedheads-cuda \
#     --build-arg BASE_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 .
#
# Without an image registry (docs/operations.md, "Building without a registry"): BASE_IMAGE is the
# image deploy/base-image.sh makes from Debian packages, and TORCH_INDEX_URL the index that
# deploy/host-index.py serves from this host's pip configuration (build with --network host), and
# PIP_INDEX_URL the same index for everything else.
#
# A base image without Python gets python3 + venv from apt. The project is installed
# editable from /opt/fedheads because the app finds templates/, static/ and alembic/
# next to its sources. The offline assets (pip packages) are fetched at build time.
# Layers, most stable first: Python, torch, the dependencies named in pyproject.toml, then the
# sources with the assets, so a change to the code reinstalls neither torch nor the dependencies.

ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# every other package (and the assets' pip download); build arguments are the RUN steps' environment
ARG PIP_INDEX_URL=https://pypi.org/simple

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    FEDHEADS_ASSETS_DIR=/opt/fedheads-assets \
    FEDHEADS_ARTIFACT_ROOT=/var/lib/fedheads/artifacts \
    FEDHEADS_DATA_ROOT=/var/lib/fedheads/data \
    FEDHEADS_DATABASE_URL=sqlite:////var/lib/fedheads/fedheads.db

RUN if ! command -v python3 >/dev/null 2>&1 || ! python3 -c "import venv, ensurepip" 2>/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv /opt/venv \
    && pip install --upgrade pip

# torch first and pinned: an open range pulls a multi-GB CUDA build into the CPU image
RUN pip install --index-url "${TORCH_INDEX_URL}" --extra-index-url "${PIP_INDEX_URL}" \
        "torch==${TORCH_VERSION}"

WORKDIR /opt/fedheads
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY README.md alembic.ini ./
COPY alembic ./alembic
COPY fedcore ./fedcore
COPY app ./app
COPY worker ./worker
COPY templates ./templates
COPY static ./static
# the study files: the dashboard's "Reproduce the paper table" reads bench/studies/paper_table.yaml
COPY bench/studies ./bench/studies
RUN pip install --no-deps -e . && fedheads assets \
    && mkdir -p /var/lib/fedheads/artifacts /var/lib/fedheads/data

EXPOSE 8000
ENTRYPOINT ["fedheads"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
