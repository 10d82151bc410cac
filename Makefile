# Build, run, test and measure the load balancer. Every target works on a fresh Debian machine
# with Go; see README.md.

GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
# An execution count, not a duration: with a duration, Go 1.26's fuzzing coordinator can fail a
# target with a bare "context deadline exceeded" at the deadline on a loaded machine, no input
# found (golang/go#75804, fixed in Go 1.27). 100000 runs take 5-15 s per target here.
FUZZTIME  ?= 100000x
# Forwarded to `go test` in `make test`, e.g. TESTFLAGS=-short.
TESTFLAGS ?=

.PHONY: all build run test unit e2e fuzz lint bench bench-go clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/loadbalancer ./cmd/loadbalancer
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/httpserver ./cmd/httpserver

# Three httpservers in temporary directories with a few files, the load balancer in front of
# them, all on 127.0.0.1; the load balancer's port is LB_PORT (default 8080), and a port taken
# stops the demo before it starts anything. Ctrl-C stops everything.
run: build
	@tests/demo.sh $(BIN)

# The whole suite: vet, unit and end-to-end tests with the race detector, then a short fuzz of
# every parser.
test: lint
	$(GO) test -race -count=1 -timeout 15m $(TESTFLAGS) ./...
	@$(MAKE) --no-print-directory fuzz

unit:
	$(GO) test -race -count=1 $(TESTFLAGS) ./actors/... ./messages/... ./cmd/...

e2e:
	$(GO) test -race -count=1 $(TESTFLAGS) ./tests/...

# Each fuzz target for FUZZTIME (go test runs one target at a time).
FUZZPKGS := ./actors/forwarder/wire/ ./actors/health/ ./cmd/httpserver/
fuzz:
	@for p in $(FUZZPKGS); do \
		for t in $$($(GO) test -list '^Fuzz' $$p | grep '^Fuzz'); do \
			echo "fuzz $$p $$t ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$p || exit 1; \
		done; \
	done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# The side-by-side benchmark: ours against HAProxy, nginx and Caddy (those installed) in front
# of the same nginx backends (in the hetero scenario, three of our httpservers, one of them 10×
# slower, with ours once per balancing policy), driven by wrk; then the Go benchmarks of the hot
# path. Knobs: ROUNDS, DURATION, CONNS, THREADS, SCENARIOS, PROXIES, LB_FLAGS, HETERO_DELAYS
# (see go doc ./tests/bench).
bench: build
	LB_BIN=$(CURDIR)/$(BIN)/loadbalancer $(GO) run ./tests/bench
	@$(MAKE) --no-print-directory bench-go

# Go benchmarks of the hot path (parsers, pick/release, a whole request through the proxy).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./actors/... ./tests/

clean:
	rm -rf $(BIN)
