#!/bin/sh
# Like the redis:7 image: a server started without a config file accepts connections from the other
# containers (protected mode off; the compose network is its boundary). Later arguments still win.
set -eu
if [ "${1:-}" = redis-server ]; then
  shift
  exec redis-server --protected-mode no "$@"
fi
exec "$@"
