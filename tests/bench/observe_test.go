package main

import (
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestMetricValue(t *testing.T) {
	body := []byte(`# HELP loadbalancer_access_log_lines_total Access log lines written.
# TYPE loadbalancer_access_log_lines_total counter
loadbalancer_access_log_lines_total 1.234567e+06
loadbalancer_access_log_dropped_lines_total 0
loadbalancer_access_log_lines_total_other 5
loadbalancer_requests_total{backend="a",code="2xx",method="GET"} 7
loadbalancer_requests_total 9 1700000000000
`)
	tests := []struct {
		name   string
		want   float64
		wantOK bool
	}{
		{name: metricLogLines, want: 1234567, wantOK: true}, // client_golang writes large values with an exponent
		{name: metricLogDropped, want: 0, wantOK: true},
		{name: "loadbalancer_requests_total", want: 9, wantOK: true}, // the unlabelled sample, not a labelled one; a timestamp after
		{name: "loadbalancer_access_log", wantOK: false},             // a prefix of names is no name
	}
	for _, tt := range tests {
		got, ok := metricValue(body, tt.name)
		if ok != tt.wantOK || got != tt.want {
			t.Errorf("%s: got %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
}

// TestScraper checks that the scraper scrapes at its interval, counts failures, stops when told
// (no scrape after stop returns) and leaves no goroutine behind.
func TestScraper(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			http.Error(w, "no", http.StatusInternalServerError)
			return
		}
		w.Write([]byte(strings.Repeat("metric 1\n", 1000)))
	}))
	defer srv.Close()
	before := runtime.NumGoroutine()

	s := startScraper(srv.URL+"/metrics", 20*time.Millisecond)
	time.Sleep(170 * time.Millisecond)
	ok, failed, lastErr := s.stop()
	if ok+failed < 4 || ok+failed > 9 {
		t.Errorf("%d scrapes in 170 ms at one each 20 ms", ok+failed)
	}
	if ok != failed && ok != failed+1 {
		t.Errorf("%d ok, %d failed: every other scrape should fail", ok, failed)
	}
	if !strings.Contains(lastErr, "500") {
		t.Errorf("last error %q, want the status", lastErr)
	}
	if got := n.Load(); got != int64(ok+failed) {
		t.Errorf("the server saw %d scrapes, the scraper counted %d", got, ok+failed)
	}
	time.Sleep(60 * time.Millisecond)
	if got := n.Load(); got != int64(ok+failed) {
		t.Errorf("%d scrapes after stop", got-int64(ok+failed))
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if now := runtime.NumGoroutine(); now > before {
		t.Errorf("%d goroutines after stop, %d before the scraper started", now, before)
	}
}

func TestCountLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	line := `{"method":"GET","status":200}` + "\n"
	if err := os.WriteFile(path, []byte(strings.Repeat(line, 100000)), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := countLines(path); err != nil || n != 100000 {
		t.Errorf("got %d, %v; want 100000", n, err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := countLines(path); err != nil || n != 0 {
		t.Errorf("after truncation: got %d, %v; want 0", n, err)
	}
}

func TestLogLine(t *testing.T) {
	tests := []struct {
		name string
		s    sample
		want string
	}{
		// A few lines more than wrk's requests: those in flight when wrk stopped.
		{name: "fine", s: sample{units: 100000, logChecked: true, logLines: 100040, logWritten: 100040},
			want: "100,040 lines for 100,000 requests (+0.04%), 0 dropped"},
		{name: "dropped", s: sample{units: 100000, logChecked: true, logLines: 98000, logWritten: 98000, logDropped: 2040},
			want: "98,000 lines for 100,000 requests (-2.00%), 2,040 dropped: MISMATCH, more than 1% off"},
		{name: "file and counter disagree", s: sample{units: 1000, logChecked: true, logLines: 1000, logWritten: 1002},
			want: "1,000 lines for 1,000 requests (+0.00%), 0 dropped, 1,002 written by its count"},
		{name: "not checked", s: sample{units: 1000, logErr: "connection refused"}, want: "not checked: connection refused"},
	}
	for _, tt := range tests {
		if got := logLine(tt.s); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestTableRatioToOurs checks the ×ours column: there where a variant of ours or base ran next
// to ours, with every row's throughput over ours's, and not elsewhere.
func TestTableRatioToOurs(t *testing.T) {
	cfg := config{conns: 64, threads: 2, rounds: 1, baseline: []string{"small"}}
	columns := regexp.MustCompile(`\s{2,}`)
	tests := []struct {
		name string
		key  string
		rows map[string]float64 // req/s of each row
		want map[string]string  // ×ours of each row; nil: no ×ours column
	}{
		{name: "access log", key: "small",
			rows: map[string]float64{"direct": 80000, "ours": 40000, "ours/access-log": 36000, "haproxy": 50000},
			want: map[string]string{"direct": "2.00×", "ours": "1.00×", "ours/access-log": "0.90×", "haproxy": "1.25×"}},
		{name: "base", key: "small8",
			rows: map[string]float64{"ours": 40000, "base": 41000, "haproxy": 50000},
			want: map[string]string{"ours": "1.00×", "base": "1.02×", "haproxy": "1.25×"}},
		{name: "ours alone", key: "small8", rows: map[string]float64{"ours": 40000, "haproxy": 50000}},
		// hetero has variants of ours but no ours: nothing to compare with.
		{name: "hetero", key: "hetero", rows: map[string]float64{"ours/peak-ewma": 4000, "haproxy": 3000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var targets []*target
			for _, name := range []string{"direct", "ours", "ours/access-log", "ours/peak-ewma", "base", "haproxy"} {
				if _, ok := tt.rows[name]; ok {
					targets = append(targets, &target{name: name})
				}
			}
			r := newReport(cfg, nil, targets, "")
			sc := scenarioFor(tt.key, cfg)
			for _, tgt := range targets {
				r.add(sc, tgt, 1, sample{rate: tt.rows[tgt.name], units: 1000, cpu: 1, perConn: math.NaN(), delivered: math.NaN()})
			}
			lines := strings.Split(strings.TrimRight(r.table(sc), "\n"), "\n")
			head := columns.Split(strings.TrimSpace(lines[0]), -1)
			col := slices.Index(head, "×ours")
			if tt.want == nil {
				if col >= 0 {
					t.Errorf("a ×ours column in %q", head)
				}
				return
			}
			if col != slices.Index(head, "×HAProxy")+1 {
				t.Fatalf("×ours is not right after ×HAProxy in %q", head)
			}
			for _, line := range lines[1:] {
				cells := columns.Split(strings.TrimSpace(line), -1)
				if len(cells) != len(head) {
					t.Fatalf("row %q: %d cells for %d columns", line, len(cells), len(head))
				}
				if got := cells[col]; got != tt.want[cells[0]] {
					t.Errorf("%s: ×ours %q, want %q", cells[0], got, tt.want[cells[0]])
				}
			}
		})
	}
}

// TestObserved checks the summary's lines about the scrapes and the access log of a row.
func TestObserved(t *testing.T) {
	ss := []sample{
		{scraped: true, scrapes: 10, units: 1000, logChecked: true, logLines: 1001, logWritten: 1001},
		{failed: "crashed"},
		{scraped: true, scrapes: 9, scrapeFail: 1, scrapeErr: "timeout", units: 1000, logErr: "refused"},
	}
	want := []string{
		"scrapes: 19 ok, 1 failed (/metrics every 1s during 2 runs); last error: timeout",
		"access log, round 1: 1,001 lines for 1,000 requests (+0.10%), 0 dropped",
		"access log, round 3: not checked: refused",
	}
	if got := observed(ss); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Rows that are not scraped (base, the peers) have nothing to say.
	if got := observed([]sample{{units: 1000}}); got != nil {
		t.Errorf("got %q for a row that was not scraped", got)
	}
}
