#!/usr/bin/env bash
# The demo behind `make run`: three httpserver backends serving one temporary directory with a
# few files (so a PUT through the load balancer can be read back whichever backend answers),
# and the load balancer in front of them, all on 127.0.0.1 only. The load balancer's port is
# $LB_PORT (default 8080); the backends and the admin listener (metrics and the stats page) take
# free ports. Ctrl-C stops everything.
set -euo pipefail
bin=$(cd "${1:-bin}" && pwd)
port=${LB_PORT:-8080}

# Stop before starting anything if the load balancer could not listen on its port (taken by an
# earlier demo, say). SO_REUSEADDR as the load balancer has, so a port in TIME_WAIT is free.
if ! why=$(python3 - "$port" 2>&1 <<'PY'
import errno, socket, sys
port = sys.argv[1]
if not port.isdigit() or not 1 <= int(port) <= 65535:
    sys.exit(f"LB_PORT={port} is not a port number (1-65535)")
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(port)))
except OSError as e:
    other = int(port) % 65535 + 1
    if e.errno == errno.EADDRINUSE:
        sys.exit(f"port {port} is already in use (another make run?); "
                 f"choose another with LB_PORT, e.g. LB_PORT={other} make run")
    sys.exit(f"cannot listen on 127.0.0.1:{port} ({e.strerror}); "
             f"choose another port with LB_PORT, e.g. LB_PORT={other} make run")
PY
); then
	echo "make run: $why" >&2
	exit 1
fi

work=$(mktemp -d)
pids=()
cleanup() {
	trap - INT TERM EXIT
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup INT TERM EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

dir="$work/files"
mkdir -p "$dir"
echo "hello through the load balancer" > "$dir/hello"
head -c 1048576 /dev/urandom > "$dir/big"
backends=()
for i in 1 2 3; do
	p=$(freeport)
	(cd "$dir" && exec "$bin/httpserver" --bind 127.0.0.1 "$p" -L -N 4) &
	pids+=($!)
	backends+=("$p")
done
admin=$(freeport)
"$bin/loadbalancer" --bind 127.0.0.1 "$port" -N 8 -R 5 "${backends[@]}" \
	--admin-addr "127.0.0.1:$admin" --access-log "$work/access.log" &
lb=$!
pids+=("$lb")
sleep 0.5
if ! kill -0 "$lb" 2>/dev/null; then
	echo "make run: the load balancer did not start (its error is above)" >&2
	exit 1
fi
cat <<TXT

Load balancer on http://127.0.0.1:$port/ in front of backends on ports ${backends[*]}.
Stats page: http://127.0.0.1:$admin/   (metrics: http://127.0.0.1:$admin/metrics)
Access log: $work/access.log
Try:
  curl -s http://127.0.0.1:$port/hello
  curl -s -T README.md http://127.0.0.1:$port/readme && curl -s http://127.0.0.1:$port/readme | head -3
  curl -s http://127.0.0.1:$port/big | wc -c
  for p in ${backends[*]}; do curl -s http://127.0.0.1:\$p/healthcheck; echo; done   # errors, entries per backend
  curl -s http://127.0.0.1:$admin/metrics | grep '^loadbalancer_requests_total'
  tail -f $work/access.log
Press Ctrl-C to stop everything.
TXT
wait
