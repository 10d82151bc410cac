#!/usr/bin/env bash
# The demo behind `make run`: three httpserver backends serving one temporary directory with a
# few files (so a PUT through the load balancer can be read back whichever backend answers),
# and the load balancer in front of them. Ctrl-C stops everything.
set -euo pipefail
bin=$(cd "${1:-bin}" && pwd)
port=${LB_PORT:-8080}
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
	(cd "$dir" && exec "$bin/httpserver" "$p" -L -N 4) &
	pids+=($!)
	backends+=("$p")
done
"$bin/loadbalancer" --bind 127.0.0.1 "$port" -N 8 -R 5 "${backends[@]}" &
pids+=($!)
sleep 0.5
cat <<TXT

Load balancer on http://127.0.0.1:$port/ in front of backends on ports ${backends[*]}.
Try:
  curl -s http://127.0.0.1:$port/hello
  curl -s -T README.md http://127.0.0.1:$port/readme && curl -s http://127.0.0.1:$port/readme | head -3
  curl -s http://127.0.0.1:$port/big | wc -c
  for p in ${backends[*]}; do curl -s http://127.0.0.1:\$p/healthcheck; echo; done   # errors, entries per backend
Press Ctrl-C to stop everything.
TXT
wait
