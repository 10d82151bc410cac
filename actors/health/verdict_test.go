package health

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// scripted answers each request with the next answer from answers, which the test sends before
// the round that is to get it.
func scripted(answers <-chan string) handler {
	return func(c net.Conn, done <-chan struct{}) {
		if _, err := readRequest(c); err != nil {
			return
		}
		select {
		case a := <-answers:
			_, _ = c.Write([]byte(a))
		case <-done:
		}
	}
}

// failing is a classic answer that fails the check; failingMark is what its reason mentions.
const (
	failing     = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
	failingMark = "500"
)

// passing is a classic answer with counters n and n.
func passing(n int64) string {
	return ok(strconv.FormatInt(n, 10) + "\n" + strconv.FormatInt(n, 10))
}

// step is one round of a rise/fall sequence: the backend's answer, and the report's line.
type step struct {
	answer string
	want   messages.BackendHealth // a Reason of "500" means one that mentions the 500
}

var (
	upCounted = func(n int64) messages.BackendHealth {
		return messages.BackendHealth{Up: true, Counted: true, Errors: n, Entries: n}
	}
	upFailing = func(n int64) messages.BackendHealth {
		return messages.BackendHealth{Up: true, Counted: true, Errors: n, Entries: n, Reason: failingMark}
	}
	downCounted = func(n int64) messages.BackendHealth {
		return messages.BackendHealth{Counted: true, Errors: n, Entries: n, Reason: failingMark}
	}
	downNever = messages.BackendHealth{Reason: failingMark}
)

// runSteps spawns a monitor with rise and fall on a backend that answers the steps in order,
// one round each (the start-up round, then RunHealthRound), and checks every report.
func runSteps(t *testing.T, rise, fall int, steps []step) {
	t.Helper()
	answers := make(chan string, 1)
	srv := serve(t, scripted(answers))
	answers <- steps[0].answer
	sys, dispatcher, pid := spawnMonitor(t, &Config{Backends: backends(srv.addr), Interval: never, Rise: rise, Fall: fall})
	for i, s := range steps {
		if i > 0 {
			answers <- s.answer
			sys.Root.Send(pid, &messages.RunHealthRound{})
		}
		r := actortest.Expect[*messages.HealthReport](dispatcher)
		got := r.Backends[0]
		if s.want.Reason != "" && strings.Contains(got.Reason, s.want.Reason) {
			got.Reason = s.want.Reason
		}
		if got != s.want {
			t.Fatalf("round %d: got %+v, want %+v", i, got, s.want)
		}
	}
}

func TestRiseFall(t *testing.T) {
	runSteps(t, 2, 3, []step{
		{passing(1), upCounted(1)},   // the first probe decides at once
		{failing, upFailing(1)},      // 1 of 3 failures: still up, the failure as reason, the last counters
		{failing, upFailing(1)},      // 2 of 3
		{failing, downCounted(1)},    // 3 of 3: down
		{passing(2), downCounted(2)}, // 1 of 2 passes: still down, with the latest failure's reason
		{failing, downCounted(2)},    // the run of passes is broken
		{passing(3), downCounted(3)}, // 1 of 2 again
		{passing(4), upCounted(4)},   // 2 of 2: up, no reason
		{failing, upFailing(4)},      // 1 of 3
		{passing(5), upCounted(5)},   // the run of failures is broken
		{failing, upFailing(5)},      // 1 of 3, counting from zero again
		{failing, upFailing(5)},      // 2 of 3
		{failing, downCounted(5)},    // 3 of 3
	})
}

func TestRiseFallFirstProbeFails(t *testing.T) {
	runSteps(t, 2, 3, []step{
		{failing, downNever},         // the first probe decides at once, whatever Fall says
		{passing(1), downCounted(1)}, // 1 of 2
		{passing(2), upCounted(2)},   // 2 of 2
	})
}

func TestRiseFallDefaults(t *testing.T) {
	// Zero Rise and Fall: one probe decides, the classic behaviour.
	runSteps(t, 0, 0, []step{
		{passing(1), upCounted(1)},
		{failing, downCounted(1)},
		{passing(2), upCounted(2)},
		{failing, downCounted(2)},
	})
}

// TestBackendStateReport checks the report line of a backend that has only ever passed
// uncounted probes (the http and tcp checks): no counters, and a reason only after a failure.
func TestBackendStateReport(t *testing.T) {
	var b backendState
	b.observe(messages.BackendHealth{Up: true}, 1, 2)
	actortest.Equal(t, "after a pass", b.report(), messages.BackendHealth{Up: true})
	b.observe(messages.BackendHealth{Reason: "status 503 not in 200-399"}, 1, 2)
	actortest.Equal(t, "after a failure", b.report(), messages.BackendHealth{Up: true, Reason: "status 503 not in 200-399"})
	b.observe(messages.BackendHealth{Reason: "dial tcp: refused"}, 1, 2)
	actortest.Equal(t, "after two failures", b.report(), messages.BackendHealth{Reason: "dial tcp: refused"})
}
