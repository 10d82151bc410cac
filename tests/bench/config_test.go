package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadConfigRows(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    []string // the rows (cfg.proxies), in order
		wantErr string   // a substring of the error; "" for none
	}{
		// The default: "ours" brings its variants along, right after it.
		{name: "default", env: nil,
			want: []string{"ours", "ours/default-R", "ours/access-log", "ours/peak-ewma", "ours/least-request", "ours/round-robin", "haproxy", "nginx", "caddy"}},
		// A variant alone, in any case, keeps its spelling.
		{name: "one variant", env: map[string]string{"PROXIES": "OURS/PEAK-EWMA,haproxy"},
			want: []string{"ours/peak-ewma", "haproxy"}},
		// "-name" leaves out a row that "ours" would bring.
		{name: "left out", env: map[string]string{"PROXIES": "ours,-ours/default-R,nginx"},
			want: []string{"ours", "ours/access-log", "ours/peak-ewma", "ours/least-request", "ours/round-robin", "nginx"}},
		{name: "without the access log", env: map[string]string{"PROXIES": "ours,-ours/access-log,haproxy"},
			want: []string{"ours", "ours/default-R", "ours/peak-ewma", "ours/least-request", "ours/round-robin", "haproxy"}},
		// "all" is every row but base, each once, the variants after ours.
		{name: "all", env: map[string]string{"PROXIES": "all,-caddy"},
			want: []string{"ours", "ours/default-R", "ours/access-log", "ours/peak-ewma", "ours/least-request", "ours/round-robin", "haproxy", "nginx"}},
		{name: "unknown row", env: map[string]string{"PROXIES": "ours/fastest"}, wantErr: `unknown "ours/fastest"`},
		// base needs the build to compare with.
		{name: "base without BASE_BIN", env: map[string]string{"PROXIES": "ours,base"}, wantErr: "set BASE_BIN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"PROXIES", "SCENARIOS", "BASELINE", "BASE_BIN", "HETERO_DELAYS"} {
				t.Setenv(k, tt.env[k])
			}
			cfg, err := loadConfig()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.proxies, tt.want) {
				t.Errorf("got rows %q, want %q", cfg.proxies, tt.want)
			}
		})
	}
}

func TestLoadConfigHeteroDelays(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		want    []time.Duration
		wantErr string
	}{
		// The default: two fast backends and one ten times slower (see doc.go for why 10 ms).
		{name: "default", value: "", want: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond}},
		{name: "two, one without delay", value: "0, 5ms", want: []time.Duration{0, 5 * time.Millisecond}},
		// One backend balances nothing.
		{name: "one", value: "10ms", wantErr: "at least two"},
		{name: "negative", value: "10ms,-1ms", wantErr: `"-1ms" is not a duration`},
		{name: "no unit", value: "10,100", wantErr: `"10" is not a duration`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HETERO_DELAYS", tt.value)
			cfg, err := loadConfig()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.heteroDelays, tt.want) {
				t.Errorf("got %v, want %v", cfg.heteroDelays, tt.want)
			}
		})
	}
}

func TestLoadConfigScenarios(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    []string // cfg.scenarios, in the order they run
		wantErr string   // a substring of the error; "" for none
	}{
		// The default runs every scenario, small at 8 and 256 connections right after small.
		{name: "default", env: nil,
			want: []string{"small", "small8", "small256", "close", "large", "upload", "hetero"}},
		// The two new scenarios can be asked for alone, in any case, in the order given.
		{name: "new ones alone", env: map[string]string{"SCENARIOS": "SMALL256,small8"},
			want: []string{"small256", "small8"}},
		// "-name" leaves them out of "all" like any other scenario.
		{name: "all but the new ones", env: map[string]string{"SCENARIOS": "all,-small8,-small256"},
			want: []string{"small", "close", "large", "upload", "hetero"}},
		// Only 8 and 256 exist: CONNS sets small's count, there is no small64.
		{name: "no other count", env: map[string]string{"SCENARIOS": "small64"}, wantErr: `unknown "small64"`},
		// THREADS is checked against CONNS only: small8 takes fewer threads instead of failing.
		{name: "threads above 8", env: map[string]string{"SCENARIOS": "small8", "THREADS": "16"},
			want: []string{"small8"}},
		// wrk needs a connection per thread in the scenarios that run at $CONNS.
		{name: "threads above conns", env: map[string]string{"SCENARIOS": "small8", "THREADS": "16", "CONNS": "8"},
			wantErr: "THREADS=16 is more than CONNS=8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"SCENARIOS", "BASELINE", "THREADS", "CONNS"} {
				t.Setenv(k, tt.env[k])
			}
			cfg, err := loadConfig()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.scenarios, tt.want) {
				t.Errorf("got scenarios %q, want %q", cfg.scenarios, tt.want)
			}
		})
	}
}

func TestScenarioWrkArgs(t *testing.T) {
	tests := []struct {
		name         string
		key          string
		env          map[string]string
		conns        int  // wrk -c
		threads      int  // wrk -t
		baseline     bool // a direct row
		wantTitleHas string
	}{
		// small runs at $CONNS with $THREADS, and has the direct row by default.
		{name: "small", key: "small", conns: 64, threads: 2, baseline: true, wantTitleHas: "small: 32-byte responses"},
		// The new scenarios: small at a fixed count of connections, which their title says.
		{name: "small8", key: "small8", conns: 8, threads: 2, wantTitleHas: "over 8 keep-alive client connections"},
		{name: "small256", key: "small256", conns: 256, threads: 2, wantTitleHas: "over 256 keep-alive client connections"},
		// CONNS does not move the fixed counts (else small8 would be small again).
		{name: "small256, CONNS=8", key: "small256", env: map[string]string{"CONNS": "8"}, conns: 256, threads: 2},
		{name: "small, CONNS=8", key: "small", env: map[string]string{"CONNS": "8"}, conns: 8, threads: 2, baseline: true},
		// wrk refuses more threads than connections: small8 caps them at 8, small256 keeps 16.
		{name: "small8, THREADS=16", key: "small8", env: map[string]string{"THREADS": "16"}, conns: 8, threads: 8},
		{name: "small256, THREADS=16", key: "small256", env: map[string]string{"THREADS": "16"}, conns: 256, threads: 16},
		// BASELINE adds the direct row to the new scenarios as to any other.
		{name: "small8 with direct", key: "small8", env: map[string]string{"BASELINE": "small8"}, conns: 8, threads: 2, baseline: true},
		// The other wrk scenarios keep $CONNS.
		{name: "close", key: "close", conns: 64, threads: 2},
		{name: "hetero", key: "hetero", conns: 64, threads: 2},
		// upload is not wrk: no wrk arguments at all.
		{name: "upload", key: "upload", conns: 0, threads: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"SCENARIOS", "BASELINE", "THREADS", "CONNS", "HETERO_DELAYS"} {
				t.Setenv(k, tt.env[k])
			}
			cfg, err := loadConfig()
			if err != nil {
				t.Fatal(err)
			}
			sc := scenarioFor(tt.key, cfg)
			if sc.key != tt.key || sc.conns != tt.conns || sc.threads != tt.threads || sc.baseline != tt.baseline {
				t.Errorf("got key %q, -c%d -t%d, baseline %v; want %q, -c%d -t%d, baseline %v",
					sc.key, sc.conns, sc.threads, sc.baseline, tt.key, tt.conns, tt.threads, tt.baseline)
			}
			if sc.threads > sc.conns {
				t.Errorf("-t%d -c%d: wrk would refuse it", sc.threads, sc.conns)
			}
			if !strings.Contains(sc.title, tt.wantTitleHas) {
				t.Errorf("title %q, want it to contain %q", sc.title, tt.wantTitleHas)
			}
		})
	}
}

func TestTargetsPerScenario(t *testing.T) {
	// Which rows each scenario has: ours and base everywhere but in hetero, the policy rows
	// only in hetero, default-R and access-log only in small (not in small8 and small256), the peers
	// everywhere; rows of no scenario that runs are left out.
	t.Setenv("SCENARIOS", "small,small8,small256,hetero")
	t.Setenv("PROXIES", "ours,haproxy")
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{cfg: cfg, backends: []*backend{{name: "backend1"}}}
	rows := map[string][]string{}
	for _, tgt := range e.targets() {
		for _, sc := range cfg.scenarios {
			if tgt.name != "direct" && tgt.runsIn(sc) {
				rows[sc] = append(rows[sc], tgt.name)
			}
		}
	}
	want := map[string][]string{
		"small":    {"ours", "ours/default-R", "ours/access-log", "haproxy"},
		"small8":   {"ours", "haproxy"},
		"small256": {"ours", "haproxy"},
		"hetero":   {"ours/peak-ewma", "ours/least-request", "ours/round-robin", "haproxy"},
	}
	for sc, w := range want {
		if !slices.Equal(rows[sc], w) {
			t.Errorf("%s: got rows %q, want %q", sc, rows[sc], w)
		}
	}

	t.Setenv("SCENARIOS", "close")
	if cfg, err = loadConfig(); err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	var names []string
	for _, tgt := range e.targets() {
		names = append(names, tgt.name)
	}
	if want := []string{"direct", "ours", "haproxy"}; !slices.Equal(names, want) {
		t.Errorf("close only: got rows %q, want %q", names, want)
	}
}

func TestLBFlags(t *testing.T) {
	// A variant's flags come after $LB_FLAGS, so that its -R or --policy is the one that counts.
	t.Setenv("LB_FLAGS", "-R 7 --no-request-id")
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{cfg: cfg}
	got := strings.Join(e.lbFlags(&target{name: "ours/default-R", flags: variantNamed("ours/default-R").flags}), " ")
	if want := "-N 4096 -R 1000000 --bind 127.0.0.1 --log-level warn -R 7 --no-request-id -R 5"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}

	// The access log row writes JSON lines to a file in the harness's log directory.
	t.Setenv("LB_FLAGS", "")
	t.Setenv("PROXIES", "ours/access-log")
	t.Setenv("SCENARIOS", "small")
	if cfg, err = loadConfig(); err != nil {
		t.Fatal(err)
	}
	e = &env{cfg: cfg, backends: []*backend{{name: "backend1"}}, logDir: "/logs"}
	ts := e.targets()
	if len(ts) != 2 || ts[1].name != "ours/access-log" || !ts[1].isOurs() {
		t.Fatalf("got targets %v, want direct and ours/access-log", ts)
	}
	got = strings.Join(e.lbFlags(ts[1]), " ")
	if want := "-N 4096 -R 1000000 --bind 127.0.0.1 --log-level warn --access-log /logs/ours-access-log.log --access-log-format json"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestWantsAccessLog(t *testing.T) {
	// The access log's directory is made only when ours/access-log runs somewhere.
	tests := []struct {
		proxies, scenarios string
		want               bool
	}{
		{proxies: "", scenarios: "", want: true},
		{proxies: "ours/access-log", scenarios: "small", want: true},
		{proxies: "ours,-ours/access-log", scenarios: "small", want: false},
		{proxies: "ours", scenarios: "small8,close,hetero", want: false},
		{proxies: "haproxy", scenarios: "small", want: false},
	}
	for _, tt := range tests {
		t.Setenv("PROXIES", tt.proxies)
		t.Setenv("SCENARIOS", tt.scenarios)
		cfg, err := loadConfig()
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.wantsAccessLog(); got != tt.want {
			t.Errorf("PROXIES=%q SCENARIOS=%q: got %v, want %v", tt.proxies, tt.scenarios, got, tt.want)
		}
	}
}
