#!/usr/bin/env bash
# The container stack, built and driven on this machine (issue 21; docs/operations.md, "Building
# without a registry"). Needs a running Docker engine (deploy/dockerd.sh start) and debootstrap.
#
#   deploy/smoke.sh               # the whole check: pytest -m compose tests/deploy (build, up, drive, down -v)
#   deploy/smoke.sh build         # base image, PostgreSQL and Redis stand-ins, fedheads:latest
#   deploy/smoke.sh up            # api + 2 workers + postgres + redis, until the API answers
#   deploy/smoke.sh down          # stop the stack and remove its volumes
#   deploy/smoke.sh compose ARGS  # any compose command on this stack (logs, ps, restart api, ...)
#
# The services talk on the compose network; the host sees only 127.0.0.1, on ports that leave its own
# services alone: the API on FEDHEADS_LOCAL_API_PORT (58000), PostgreSQL on FEDHEADS_LOCAL_PG_PORT
# (55432), and during the build this host's pip index on FEDHEADS_HOST_INDEX_PORT (58001). The compose project is
# FEDHEADS_SMOKE_PROJECT (fedheads-smoke). Timings go to stdout as "timing: <what> <seconds> s".
set -euo pipefail
cd "$(dirname "$0")/.."

export FEDHEADS_BASE_IMAGE=${FEDHEADS_BASE_IMAGE:-fedheads-base:bookworm}
export FEDHEADS_LOCAL_API_PORT=${FEDHEADS_LOCAL_API_PORT:-58000}
export FEDHEADS_LOCAL_PG_PORT=${FEDHEADS_LOCAL_PG_PORT:-55432}
export FEDHEADS_API_PUBLISH=127.0.0.1:$FEDHEADS_LOCAL_API_PORT
INDEX_PORT=${FEDHEADS_HOST_INDEX_PORT:-58001}
export FEDHEADS_TORCH_INDEX_URL=${FEDHEADS_TORCH_INDEX_URL:-http://127.0.0.1:$INDEX_PORT/simple}
export FEDHEADS_PIP_INDEX_URL=${FEDHEADS_PIP_INDEX_URL:-http://127.0.0.1:$INDEX_PORT/simple}
PROJECT=${FEDHEADS_SMOKE_PROJECT:-fedheads-smoke}
# the legacy builder: Debian's docker.io has no buildx, and compose v1 builds through the engine API
export DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0} COMPOSE_DOCKER_CLI_BUILD=${COMPOSE_DOCKER_CLI_BUILD:-0}

compose() {
  local files=(-p "$PROJECT" -f docker-compose.yml -f docker-compose.local.yml)
  if docker compose version >/dev/null 2>&1; then
    docker compose "${files[@]}" "$@"
  else
    docker-compose "${files[@]}" "$@"
  fi
}

now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

build() {
  docker info >/dev/null 2>&1 || { echo "no Docker engine answers (deploy/dockerd.sh start)" >&2; exit 1; }
  local t0 t1
  t0=$(now)
  deploy/base-image.sh
  echo "timing: base-image $(since "$t0") s"
  t1=$(now)
  python3 deploy/host-index.py --port "$INDEX_PORT" &
  local index_pid=$!
  trap 'kill "$index_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 30); do curl -fsS -o /dev/null "http://127.0.0.1:$INDEX_PORT/simple/" && break; sleep 0.5; done
  compose build postgres redis api
  kill "$index_pid" 2>/dev/null || true
  trap - EXIT
  docker image prune -f >/dev/null  # the previous fedheads:latest, untagged by a rebuild
  echo "timing: images $(since "$t1") s"
  echo "timing: build $(since "$t0") s"
  docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' \
    | grep -E "^(fedheads|fedheads-base|fedheads-postgres|fedheads-redis):" | sed 's/^/image: /'
}

up() {
  local t0 url
  t0=$(now)
  url="http://127.0.0.1:$FEDHEADS_LOCAL_API_PORT/api/v1/health"
  compose up -d --no-build --scale worker=2 postgres redis api worker
  for _ in $(seq 1 180); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then
      echo "timing: start $(since "$t0") s"
      return 0
    fi
    sleep 1
  done
  echo "the API did not answer $url within 180 s" >&2
  compose ps >&2 || true
  compose logs --tail 40 >&2 || true
  exit 1
}

down() { compose down -v --remove-orphans; }

case "${1:-all}" in
  build) build ;;
  up) up ;;
  down) down ;;
  compose) shift; compose "$@" ;;
  all) exec "${PYTHON:-.venv/bin/python}" -m pytest -q -p no:cacheprovider -m compose tests/deploy -s ;;
  *) echo "usage: $0 [build|up|down|compose ARGS...]" >&2; exit 2 ;;
esac
