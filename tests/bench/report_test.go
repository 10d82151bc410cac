package main

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFmtSplit(t *testing.T) {
	tests := []struct {
		name   string
		shares []float64
		want   string
	}{
		{name: "unknown", shares: nil, want: "-"},
		{name: "a NaN", shares: []float64{0.5, math.NaN()}, want: "-"},
		{name: "two even", shares: []float64{0.5, 0.5}, want: "50/50"},
		// A half point goes to the first of equal remainders, as math.Round gave it before.
		{name: "two, half points", shares: []float64{0.495, 0.505}, want: "50/50"},
		{name: "direct", shares: []float64{1, 0}, want: "100/0"},
		// Three shares that round to 101 or 99 each still add up to 100.
		{name: "thirds", shares: []float64{1.0 / 3, 1.0 / 3, 1.0 / 3}, want: "34/33/33"},
		{name: "largest remainders", shares: []float64{0.456, 0.456, 0.088}, want: "46/45/9"},
		// Medians across rounds need not add up to 1: they are shown as shares of their sum.
		{name: "not normalised", shares: []float64{0.48, 0.48, 0.05}, want: "48/47/5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmtSplit(tt.shares); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseCounters(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		httpserver bool
		want       counters
		wantErr    bool
	}{
		{name: "stub_status", body: "Active connections: 2 \nserver accepts handled requests\n 5 5 6 \nReading: 0 Writing: 1 Waiting: 1 \n",
			want: counters{requests: 6, accepts: 5}},
		// httpserver's /healthcheck: "<errors>\n<entries>"; it does not count connections.
		{name: "healthcheck", body: "3\n1234", httpserver: true, want: counters{requests: 1234, accepts: -1}},
		{name: "healthcheck, trailing newline", body: "0\n7\n", httpserver: true, want: counters{requests: 7, accepts: -1}},
		{name: "healthcheck, one line", body: "7", httpserver: true, wantErr: true},
		{name: "stub_status cut short", body: "Active connections: 2\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCounters(tt.body, tt.httpserver)
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v, want one: %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestTableCPUPerUnit checks that every row with figures, in every scenario, shows its CPU time
// per request (per MiB in upload): the figure the issue's target, "CPU per request below
// HAProxy's in every scenario", is read from.
func TestTableCPUPerUnit(t *testing.T) {
	tests := []struct {
		name   string
		key    string
		rows   []string // the targets, in table order
		column string   // the CPU-per-unit column's heading
	}{
		// small has the direct row (BASELINE's default), ours/default-R and ours/access-log.
		{name: "small", key: "small", rows: []string{"direct", "ours", "ours/default-R", "ours/access-log", "haproxy", "nginx", "caddy"}, column: "CPU µs/req"},
		// The new scenarios: small at 8 and at 256 client connections.
		{name: "small8", key: "small8", rows: []string{"ours", "haproxy", "nginx", "caddy"}, column: "CPU µs/req"},
		{name: "small256", key: "small256", rows: []string{"ours", "haproxy", "nginx", "caddy"}, column: "CPU µs/req"},
		{name: "close", key: "close", rows: []string{"ours", "haproxy", "nginx", "caddy"}, column: "CPU µs/req"},
		// large has a MiB/s column more, which shifts the others.
		{name: "large", key: "large", rows: []string{"ours", "haproxy", "nginx", "caddy"}, column: "CPU µs/req"},
		// upload has a table of its own, per MiB uploaded (every upload is of the same size).
		{name: "upload", key: "upload", rows: []string{"ours", "haproxy", "nginx", "caddy"}, column: "CPU µs/MiB"},
		// hetero has the policy rows of ours instead of ours.
		{name: "hetero", key: "hetero", rows: []string{"ours/peak-ewma", "ours/least-request", "ours/round-robin", "haproxy", "nginx", "caddy"}, column: "CPU µs/req"},
	}
	if len(tests) != len(allScenarios) {
		t.Errorf("%d cases for %d scenarios: a scenario is not covered", len(tests), len(allScenarios))
	}
	cfg := config{conns: 64, threads: 2, rounds: 2, uploaders: 4, uploadMiB: 100, baseline: []string{"small"},
		heteroDelays: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond}}
	columns := regexp.MustCompile(`\s{2,}`) // cells are two spaces apart at least; headings have one
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !slices.Contains(allScenarios, tt.key) {
				t.Fatalf("%q is not a scenario", tt.key)
			}
			var targets []*target
			for _, name := range tt.rows {
				targets = append(targets, &target{name: name})
			}
			r := newReport(cfg, nil, targets, "")
			sc := scenarioFor(tt.key, cfg)
			want := map[string]string{}
			for i, tgt := range targets {
				// A different CPU time per row, so that rows cannot be mixed up; the first row
				// also has a failed round, which must not hide its figures.
				cpu := 1 + 0.1*float64(i) // 50 to 75 µs: under 100, fmtFloat keeps a decimal
				if i == 0 {
					r.add(sc, tgt, 1, sample{failed: "crashed"})
				} else {
					r.add(sc, tgt, 1, sample{rate: 1000, units: 20000, cpu: cpu, perConn: math.NaN(), delivered: math.NaN()})
				}
				r.add(sc, tgt, 2, sample{rate: 1000, units: 20000, cpu: cpu, perConn: math.NaN(), delivered: math.NaN()})
				want[tgt.name] = fmt.Sprintf("%.1f", cpu/20000*1e6)
			}
			lines := strings.Split(strings.TrimRight(r.table(sc), "\n"), "\n")
			head := columns.Split(strings.TrimSpace(lines[0]), -1)
			col := slices.Index(head, tt.column)
			if col < 0 {
				t.Fatalf("no %q column in %q", tt.column, head)
			}
			if len(lines)-1 != len(tt.rows) {
				t.Fatalf("got %d rows, want %d:\n%s", len(lines)-1, len(tt.rows), strings.Join(lines, "\n"))
			}
			for _, line := range lines[1:] {
				cells := columns.Split(strings.TrimSpace(line), -1)
				if len(cells) != len(head) {
					t.Errorf("row %q: %d cells for %d columns", line, len(cells), len(head))
					continue
				}
				name, _, _ := strings.Cut(cells[0], " (") // "ours (1/2)": a failed round
				if got := cells[col]; got != want[name] {
					t.Errorf("%s: %s %q, want %q", name, tt.column, got, want[name])
				}
			}
		})
	}
}

func TestClientLine(t *testing.T) {
	tests := []struct {
		name      string
		scenarios []string
		threads   int
		want      string // the wrk part of the line, up to the warm-up
	}{
		// Scenarios at $CONNS only: the line as it always was.
		{name: "no fixed counts", scenarios: []string{"small", "close"}, threads: 2,
			want: "client: wrk -t2 -c64 -d10s --latency (warm-up"},
		// small8 and small256 say what they run with instead, in the order they run.
		{name: "all", scenarios: allScenarios, threads: 2,
			want: "client: wrk -t2 -c64 -d10s --latency, in small8 -t2 -c8, in small256 -t2 -c256 (warm-up"},
		// With more threads than 8, small8 runs with fewer than $THREADS: the line shows it.
		{name: "threads capped", scenarios: []string{"small256", "small8"}, threads: 16,
			want: "client: wrk -t16 -c64 -d10s --latency, in small256 -t16 -c256, in small8 -t8 -c8 (warm-up"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config{duration: 10 * time.Second, warmup: time.Second, conns: 64, threads: tt.threads,
				uploaders: 4, uploadMiB: 100, scenarios: tt.scenarios}
			if got := clientLine(c); !strings.HasPrefix(got, tt.want) {
				t.Errorf("got %q, want it to begin with %q", got, tt.want)
			}
		})
	}
}
