#!/usr/bin/env bash
# A PgBouncer of its own, in transaction mode, in front of the PostgreSQL server on 127.0.0.1:SERVER_PORT,
# for tests: every database of that server is routed (the per-test ones made from a template too)
# and any user is trusted, as the server itself trusts 127.0.0.1. Its ini and auth file live in a
# temporary folder removed on exit. Runs in the foreground until SIGTERM/SIGINT.
# Usage: .ci/pgbouncer.sh LISTEN_PORT SERVER_PORT
set -euo pipefail
listen_port="$1"
server_port="$2"
bin="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"

dir="$(mktemp -d -t gatehouse-pgbouncer-XXXXXX)"
child=""
cleanup() {
  if [ -n "$child" ]; then kill "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 0' TERM INT

# default_pool_size is below a test pool's 5 connections on purpose: one client's statements then
# run on different server connections, which is what breaks named prepared statements under load.
cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$server_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $listen_port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = 2
max_client_conn = 500
EOF
echo '"postgres" ""' >"$dir/users.txt"

# PgBouncer refuses to run as root; -u makes it switch to that user itself.
if [ "$(id -u)" -eq 0 ]; then
  chmod 755 "$dir"
  "$bin" -u postgres "$dir/pgbouncer.ini" &
else
  "$bin" "$dir/pgbouncer.ini" &
fi
child=$!
wait "$child"
