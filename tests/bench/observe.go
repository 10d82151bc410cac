package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// scrapeEvery is how often the harness scrapes /metrics of a row of ours while a run goes on:
// like a Prometheus with scrape_interval 1s, far more often than the usual 15 s.
const scrapeEvery = time.Second

// scraper fetches a /metrics URL at an interval and throws the bodies away, counting the
// scrapes that worked and those that did not.
type scraper struct {
	url        string
	client     *http.Client
	stopc      chan struct{}
	donec      chan struct{}
	ok, failed int
	lastErr    string
}

// startScraper scrapes url every interval (the first time one interval from now) until stop.
// Each scrape times out after one interval, as Prometheus's scrape_timeout may not exceed the
// scrape_interval; connections are kept alive between scrapes, as Prometheus keeps them.
func startScraper(url string, every time.Duration) *scraper {
	s := &scraper{url: url, client: &http.Client{Timeout: every, Transport: &http.Transport{MaxIdleConnsPerHost: 1}},
		stopc: make(chan struct{}), donec: make(chan struct{})}
	go s.run(every)
	return s
}

func (s *scraper) run(every time.Duration) {
	defer close(s.donec)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-s.stopc:
			return
		case <-tick.C:
		}
		if _, err := fetchMetrics(s.client, s.url, false); err != nil {
			s.failed++
			s.lastErr = err.Error()
		} else {
			s.ok++
		}
	}
}

// stop ends the scraping, after the scrape under way if any (at most its timeout), closes the
// scraper's connections and says how the scrapes went.
func (s *scraper) stop() (ok, failed int, lastErr string) {
	close(s.stopc)
	<-s.donec
	s.client.CloseIdleConnections()
	return s.ok, s.failed, s.lastErr
}

// fetchMetrics GETs a /metrics URL and returns its body, or with keep false only reads it to
// the end and returns nil.
func fetchMetrics(client *http.Client, url string, keep bool) ([]byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body []byte
	if keep {
		body, err = io.ReadAll(resp.Body)
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return body, nil
}

// metricValue is the value of the sample of a metric without labels in a Prometheus text
// exposition ("name 123" or "name 1.2e+06"), and whether there was one.
func metricValue(body []byte, name string) (float64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+" ")
		if !ok {
			continue
		}
		f := strings.Fields(rest) // the value, then perhaps a timestamp
		if len(f) == 0 {
			return 0, false
		}
		v, err := strconv.ParseFloat(f[0], 64)
		return v, err == nil
	}
	return 0, false
}

// The access log writer's counters on /metrics.
const (
	metricLogLines   = "loadbalancer_access_log_lines_total"
	metricLogDropped = "loadbalancer_access_log_dropped_lines_total"
)

// logCounts is what the access log writer says it has done so far.
type logCounts struct{ written, dropped int64 }

// readLogCounts scrapes the writer's counters from a row's /metrics.
func (e *env) readLogCounts(t *target) (logCounts, error) {
	body, err := fetchMetrics(e.client, "http://"+t.admin+"/metrics", true)
	if err != nil {
		return logCounts{}, err
	}
	w, ok1 := metricValue(body, metricLogLines)
	d, ok2 := metricValue(body, metricLogDropped)
	if !ok1 || !ok2 {
		return logCounts{}, fmt.Errorf("/metrics has no %s or %s", metricLogLines, metricLogDropped)
	}
	return logCounts{written: int64(w), dropped: int64(d)}, nil
}

// logSettle is how long the access log's counters must stand still for the lines of the
// requests before to count as written: more than the event loops' 200 ms before they send a
// batch that is not full, and room for the writer's write(2).
const logSettle = 500 * time.Millisecond

// settleLog waits until every line of the requests so far is written or dropped (the counters
// stood still for logSettle; at most 10 s) and returns the counters.
func (e *env) settleLog(ctx context.Context, t *target) (logCounts, error) {
	prev, err := e.readLogCounts(t)
	if err != nil {
		return prev, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		sleepCtx(ctx, logSettle)
		if ctx.Err() != nil {
			return prev, ctx.Err()
		}
		c, err := e.readLogCounts(t)
		if err != nil || c == prev {
			return c, err
		}
		if time.Now().After(deadline) {
			return c, errors.New("the access log's counters still grow 10 s after the run")
		}
		prev = c
	}
}

// startLogCheck begins the access log check of one run of t, after the warm-up: once the
// warm-up's lines are written it empties the file (the load balancer appends: O_APPEND) and
// returns the writer's counters at that point.
func (e *env) startLogCheck(ctx context.Context, t *target) (logCounts, error) {
	c, err := e.settleLog(ctx, t)
	if err != nil {
		return c, err
	}
	return c, os.Truncate(t.accessLog, 0)
}

// finishLogCheck ends the access log check of one run of t: once the run's lines are written,
// it counts the lines in the file and what the writer wrote and dropped since before, then
// empties the file so that the log never grows beyond one run's lines.
func (e *env) finishLogCheck(ctx context.Context, t *target, before logCounts, s *sample) {
	after, err := e.settleLog(ctx, t)
	if err == nil {
		s.logLines, err = countLines(t.accessLog)
	}
	if err != nil {
		s.logErr = firstLine(err.Error())
		return
	}
	_ = os.Truncate(t.accessLog, 0)
	s.logChecked = true
	s.logWritten, s.logDropped = after.written-before.written, after.dropped-before.dropped
}

// countLines counts the newlines in a file.
func countLines(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n int64
	buf := make([]byte, 256<<10)
	for {
		k, err := f.Read(buf)
		n += int64(bytes.Count(buf[:k], []byte{'\n'}))
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// logTolerance is how far the access log's lines may be off the requests wrk counted. The
// log has a few lines more: the requests in flight when wrk stopped, which wrk does not count.
const logTolerance = 0.01

// logOff is how far a run's access log lines are off its requests, as a fraction of them.
func logOff(s sample) float64 {
	if s.units <= 0 {
		return 0
	}
	return (float64(s.logLines) - s.units) / s.units
}

// logLine describes a run's access log check in a few words.
func logLine(s sample) string {
	if !s.logChecked {
		return "not checked: " + s.logErr
	}
	text := fmt.Sprintf("%s lines for %s requests (%+.2f%%), %s dropped", fmtInt(float64(s.logLines)),
		fmtInt(s.units), 100*logOff(s), fmtInt(float64(s.logDropped)))
	if s.logWritten != s.logLines {
		text += fmt.Sprintf(", %s written by its count", fmtInt(float64(s.logWritten)))
	}
	if off := logOff(s); off > logTolerance || off < -logTolerance {
		text += fmt.Sprintf(": MISMATCH, more than %.0f%% off", 100*logTolerance)
	}
	return text
}

// fsKind says, for the header, whether dir is in memory (tmpfs) rather than on a disk.
func fsKind(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "?"
	}
	const tmpfsMagic, ramfsMagic = 0x01021994, 0x858458f6
	if st.Type == tmpfsMagic || st.Type == ramfsMagic {
		return "tmpfs: in memory, not on a disk"
	}
	return "not tmpfs"
}
