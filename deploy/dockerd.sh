#!/usr/bin/env bash
# Start or stop a Docker engine for the compose test (tests/deploy/test_compose_stack.py).
#
#   deploy/dockerd.sh start   # start dockerd if it is installed and not answering; prints "started"
#                             # when this call started it, "running" when one was already up
#   deploy/dockerd.sh stop    # stop the dockerd that `start` started (its pid file), nothing else
#
# The engine runs with host networking in mind: the stack's containers use --network host, so
# dockerd does not touch iptables. Its log is /var/log/fedheads-dockerd.log.
set -euo pipefail

PIDFILE=${FEDHEADS_DOCKERD_PIDFILE:-/run/fedheads-dockerd.pid}
LOG=${FEDHEADS_DOCKERD_LOG:-/var/log/fedheads-dockerd.log}

answering() { docker info >/dev/null 2>&1; }

case "${1:-}" in
  start)
    if answering; then echo running; exit 0; fi
    command -v dockerd >/dev/null 2>&1 || { echo "dockerd is not installed (Debian's docker.io package)" >&2; exit 1; }
    [ "$(id -u)" = 0 ] || { echo "dockerd must be started as root" >&2; exit 1; }
    dockerd --iptables=false --ip6tables=false >>"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 60); do answering && { echo started; exit 0; }; kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 1; done
    echo "dockerd did not start; the end of $LOG:" >&2
    tail -n 20 "$LOG" >&2 || true
    exit 1
    ;;
  stop)
    [ -f "$PIDFILE" ] || exit 0
    pid=$(cat "$PIDFILE")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    fi
    rm -f "$PIDFILE"
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
