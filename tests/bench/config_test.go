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
			want: []string{"ours", "ours/default-R", "ours/peak-ewma", "ours/least-request", "ours/round-robin", "haproxy", "nginx", "caddy"}},
		// A variant alone, in any case, keeps its spelling.
		{name: "one variant", env: map[string]string{"PROXIES": "OURS/PEAK-EWMA,haproxy"},
			want: []string{"ours/peak-ewma", "haproxy"}},
		// "-name" leaves out a row that "ours" would bring.
		{name: "left out", env: map[string]string{"PROXIES": "ours,-ours/default-R,nginx"},
			want: []string{"ours", "ours/peak-ewma", "ours/least-request", "ours/round-robin", "nginx"}},
		// "all" is every row but base, each once, the variants after ours.
		{name: "all", env: map[string]string{"PROXIES": "all,-caddy"},
			want: []string{"ours", "ours/default-R", "ours/peak-ewma", "ours/least-request", "ours/round-robin", "haproxy", "nginx"}},
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

func TestTargetsPerScenario(t *testing.T) {
	// Which rows each scenario has: ours and base everywhere but in hetero, the policy rows
	// only in hetero, default-R only in small, the peers everywhere; rows of no scenario that
	// runs are left out.
	t.Setenv("SCENARIOS", "small,hetero")
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
		"small":  {"ours", "ours/default-R", "haproxy"},
		"hetero": {"ours/peak-ewma", "ours/least-request", "ours/round-robin", "haproxy"},
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
}
