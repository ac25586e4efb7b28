# fedheads image: the API, the Celery worker and the CLI (entrypoint `fedheads`).
#
#   docker build -t fedheads .                         # CPU: python:3.11-slim + torch 2.13.0 CPU build
#   docker build -t fedheads-cuda \
#     --build-arg BASE_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 .
#
# A base image without Python gets python3 + venv from apt. The project is installed
# editable from /opt/fedheads because the app finds templates/, static/ and alembic/
# next to its sources. The offline assets (pip packages) are fetched at build time.

ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

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
RUN pip install --index-url "${TORCH_INDEX_URL}" --extra-index-url https://pypi.org/simple \
        "torch==${TORCH_VERSION}"

WORKDIR /opt/fedheads
COPY pyproject.toml README.md alembic.ini ./
COPY alembic ./alembic
COPY fedcore ./fedcore
COPY app ./app
COPY worker ./worker
COPY templates ./templates
COPY static ./static
RUN pip install -e . && fedheads assets \
    && mkdir -p /var/lib/fedheads/artifacts /var/lib/fedheads/data

EXPOSE 8000
ENTRYPOINT ["fedheads"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
