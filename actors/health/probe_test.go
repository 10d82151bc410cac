package health

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

func testProber(timeout time.Duration) *prober {
	cfg := &Config{Timeout: timeout}
	return &prober{dial: cfg.dial(), timeout: cfg.timeout()}
}

// probeOnce probes addr with the classic check and timeout, and returns the result.
func probeOnce(t *testing.T, addr string, timeout time.Duration) messages.BackendHealth {
	t.Helper()
	return probeWith(t, addr, timeout, Check{})
}

// probeWith probes addr with check and timeout, and returns the result.
func probeWith(t *testing.T, addr string, timeout time.Duration, check Check) messages.BackendHealth {
	t.Helper()
	if errs := check.validate(); len(errs) > 0 {
		t.Fatalf("invalid check %+v: %v", check, errs)
	}
	return testProber(timeout).probe(context.Background(), addr, check.checker(addr))
}

// wantDown fails the test unless h is down with a reason containing each of parts.
func wantDown(t *testing.T, h messages.BackendHealth, parts ...string) {
	t.Helper()
	if h.Up || h.Reason == "" {
		t.Fatalf("got %+v, want down with a reason", h)
	}
	t.Logf("reason: %s", h.Reason)
	for _, p := range parts {
		if !strings.Contains(h.Reason, p) {
			t.Fatalf("got reason %q, want it to mention %q", h.Reason, p)
		}
	}
}

func TestProbeHealthy(t *testing.T) {
	srv := serve(t, healthy(3, 42))
	got := probeOnce(t, srv.addr, actortest.Wait)
	actortest.Equal(t, "health", got, messages.BackendHealth{Up: true, Counted: true, Errors: 3, Entries: 42})
}

func TestProbeSendsExactRequest(t *testing.T) {
	reqs := make(chan []byte, 1)
	srv := serve(t, func(c net.Conn, _ <-chan struct{}) {
		req, _ := readRequest(c)
		reqs <- req
		_, _ = c.Write([]byte(ok("0\n1")))
	})
	got := probeOnce(t, srv.addr, actortest.Wait)
	if !got.Up {
		t.Fatalf("got %+v, want up", got)
	}
	want := "GET /healthcheck HTTP/1.1\r\nHost: " + srv.addr + "\r\n\r\n"
	actortest.Equal(t, "request", string(<-reqs), want)
}

func TestProbeRefused(t *testing.T) {
	wantDown(t, probeOnce(t, deadAddr(t), actortest.Wait), "dial", "refused")
}

func TestProbeNeverAnswers(t *testing.T) {
	srv := serve(t, silent(nil))
	const timeout = 200 * time.Millisecond
	start := time.Now()
	got := probeOnce(t, srv.addr, timeout)
	wantDown(t, got, "no complete answer within")
	// Not a timing assertion: only a guard that the deadline, not the test's end, stopped it.
	if took := time.Since(start); took > timeout+actortest.Wait {
		t.Fatalf("probe took %v, want about %v", took, timeout)
	}
}

func TestProbeHeadWithoutBody(t *testing.T) {
	// The head promises a body that never comes, on a connection that stays open.
	srv := serve(t, func(c net.Conn, done <-chan struct{}) {
		if _, err := readRequest(c); err != nil {
			return
		}
		_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n2\n"))
		<-done
	})
	wantDown(t, probeOnce(t, srv.addr, 200*time.Millisecond), "no complete answer within")
}

func TestProbeRawAnswer(t *testing.T) {
	for _, raw := range []string{"0\n5", "a\nb"} {
		srv := serve(t, answer(raw))
		wantDown(t, probeOnce(t, srv.addr, actortest.Wait), ErrNotHTTP.Error())
	}
}

func TestProbe404(t *testing.T) {
	srv := serve(t, answer("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
	wantDown(t, probeOnce(t, srv.addr, actortest.Wait), ErrStatus.Error(), "404")
}

func TestProbeResetMidBody(t *testing.T) {
	srv := serve(t, func(c net.Conn, _ <-chan struct{}) {
		if _, err := readRequest(c); err != nil {
			return
		}
		_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n2\n"))
		_ = c.(*net.TCPConn).SetLinger(0) // Close sends RST
	})
	// Depending on timing the probe sees the reset or the end of the stream; either is down,
	// and neither waits for the deadline.
	got := probeOnce(t, srv.addr, time.Minute)
	wantDown(t, got)
	if strings.Contains(got.Reason, "no complete answer") {
		t.Fatalf("got reason %q, want the reset or the short body, not the deadline", got.Reason)
	}
}

func TestProbeCancelled(t *testing.T) {
	srv := serve(t, silent(nil))
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan messages.BackendHealth, 1)
	go func() { res <- testProber(time.Minute).probe(ctx, srv.addr, newClassicCheck(srv.addr)) }()
	cancel()
	select {
	case got := <-res:
		wantDown(t, got, errCancelled.Error())
	case <-time.After(actortest.Wait):
		t.Fatal("cancelled probe still running")
	}
}

func TestProbeAnswerTooLong(t *testing.T) {
	// Headers without end: the probe stops reading at maxAnswer instead of until the deadline.
	srv := serve(t, func(c net.Conn, done <-chan struct{}) {
		if _, err := readRequest(c); err != nil {
			return
		}
		_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\n"))
		line := []byte("X-Padding: " + strings.Repeat("x", 1000) + "\r\n")
		for i := 0; i < 2*maxAnswer/len(line); i++ {
			if _, err := c.Write(line); err != nil {
				return
			}
		}
		<-done
	})
	wantDown(t, probeOnce(t, srv.addr, time.Minute), "no complete answer in 16384 bytes")
}
