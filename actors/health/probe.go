package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/messages"
)

// maxAnswer caps how many bytes a probe reads from one backend before the body (the classic
// answer, or the http check's response head). A healthy answer is well under a hundred bytes; a
// backend that streams more (endless headers, say) runs out of input and is down, instead of
// growing the probe's memory until the deadline.
const maxAnswer = 16 << 10

// aLongTimeAgo is a deadline in the past: setting it makes blocked I/O on a conn return at once.
var aLongTimeAgo = time.Unix(1, 0)

// errCancelled is the reason of a probe its monitor no longer wants (it stopped or restarted).
var errCancelled = errors.New("health: probe cancelled")

// prober probes backends. It is built once and never changed, so probe goroutines share it.
type prober struct {
	dial    DialFunc
	timeout time.Duration
}

// probe checks one backend once with check, on a fresh connection, and says what it found.
// Dialing and the whole check must finish within p.timeout; cancelling ctx ends the probe early,
// as down.
func (p *prober) probe(ctx context.Context, addr string, check Checker) messages.BackendHealth {
	r, err := p.check(ctx, addr, check)
	if err != nil {
		return messages.BackendHealth{Reason: err.Error()}
	}
	return messages.BackendHealth{Up: true, Counted: r.Counted, Errors: r.Counters.Errors, Entries: r.Counters.Entries}
}

func (p *prober) check(parent context.Context, addr string, check Checker) (Result, error) {
	ctx, cancel := context.WithTimeout(parent, p.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()

	conn, err := p.dial(ctx, "tcp", addr)
	if err != nil {
		return Result{}, p.failure(parent, "no connection", err) // net's errors say "dial tcp <addr>"
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return Result{}, fmt.Errorf("set deadline: %w", err)
	}
	// Cancelling the monitor's context interrupts whatever I/O is blocked. Registered after
	// SetDeadline, so the deadline above cannot overwrite the interruption.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(aLongTimeAgo) })
	defer stop()

	r, err := check.Check(conn)
	if err != nil {
		return Result{}, p.failure(parent, "no complete answer", err)
	}
	return r, nil
}

// failure turns an error of the probe into its reason, naming a timeout as such: what did not
// happen ("no connection", "no complete answer") within the probe's timeout.
func (p *prober) failure(parent context.Context, missing string, err error) error {
	if parent.Err() != nil {
		return errCancelled
	}
	var ne net.Error
	if (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s within %v: %w", missing, p.timeout, err)
	}
	return err
}

// probeRun is what one probe goroutine needs; it holds nothing of the monitor's state.
type probeRun struct {
	prober *prober
	root   *actor.RootContext
	self   *actor.PID
	round  uint64
	index  int
	addr   string
	check  Checker // shared read-only with the monitor and the backend's other probes
}

// run is the body of a probe goroutine. It reports by message: *messages.ProbeFinished when
// ctx is still live (a cancelled round is not wanted any more, and its monitor may be gone), and
// *messages.ProbePanicked, always, when the probe panicked.
func (pr probeRun) run(ctx context.Context) {
	defer func() {
		if v := recover(); v != nil {
			pr.root.Send(pr.self, &messages.ProbePanicked{Round: pr.round, Index: pr.index, Value: v, Stack: debug.Stack()})
		}
	}()
	at := time.Now()
	h := pr.prober.probe(ctx, pr.addr, pr.check)
	if ctx.Err() != nil {
		return
	}
	pr.root.Send(pr.self, &messages.ProbeFinished{Round: pr.round, Index: pr.index, Health: h, At: at, Took: time.Since(at)})
}
