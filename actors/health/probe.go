package health

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/messages"
)

// maxAnswer caps how many bytes a probe reads from one backend. A healthy answer is well under
// a hundred bytes; a backend that streams more (endless headers, say) runs out of input and is
// down, instead of growing the probe's memory until the deadline.
const maxAnswer = 16 << 10

// aLongTimeAgo is a deadline in the past: setting it makes blocked I/O on a conn return at once.
var aLongTimeAgo = time.Unix(1, 0)

// errCancelled is the reason of a probe its monitor no longer wants (it stopped or restarted).
var errCancelled = errors.New("health: probe cancelled")

// healthRequest returns the health check request for the backend at addr: exactly the
// contract's request line and a Host header, nothing more (no Connection: close; the answer is
// read by its Content-Length).
func healthRequest(addr string) []byte {
	return []byte("GET /healthcheck HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")
}

// prober probes backends. It is built once and never changed, so probe goroutines share it.
type prober struct {
	dial    DialFunc
	timeout time.Duration
	parser  Parser
}

// probe checks one backend once, on a fresh connection, and says what it found. Dialing,
// writing req and reading the whole answer must all finish within p.timeout; cancelling ctx
// ends the probe early, as down.
func (p *prober) probe(ctx context.Context, addr string, req []byte) messages.BackendHealth {
	c, err := p.check(ctx, addr, req)
	if err != nil {
		return messages.BackendHealth{Reason: err.Error()}
	}
	return messages.BackendHealth{Up: true, Errors: c.Errors, Entries: c.Entries}
}

func (p *prober) check(parent context.Context, addr string, req []byte) (Counters, error) {
	ctx, cancel := context.WithTimeout(parent, p.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()

	conn, err := p.dial(ctx, "tcp", addr)
	if err != nil {
		return Counters{}, p.failure(parent, "", err) // net's errors say "dial tcp <addr>"
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return Counters{}, fmt.Errorf("set deadline: %w", err)
	}
	// Cancelling the monitor's context interrupts whatever I/O is blocked. Registered after
	// SetDeadline, so the deadline above cannot overwrite the interruption.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(aLongTimeAgo) })
	defer stop()

	if _, err := conn.Write(req); err != nil {
		return Counters{}, p.failure(parent, "write request", err)
	}
	lr := &io.LimitedReader{R: conn, N: maxAnswer}
	c, err := p.parser.Parse(bufio.NewReaderSize(lr, 1024))
	if err != nil {
		if lr.N == 0 {
			return Counters{}, fmt.Errorf("%w: no complete answer in %d bytes", ErrNotHTTP, maxAnswer)
		}
		return Counters{}, p.failure(parent, "", err)
	}
	return c, nil
}

// failure turns an error of the probe into its reason, naming a timeout as such.
func (p *prober) failure(parent context.Context, op string, err error) error {
	if parent.Err() != nil {
		return errCancelled
	}
	if op != "" {
		err = fmt.Errorf("%s: %w", op, err)
	}
	var ne net.Error
	if (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no complete answer within %v: %w", p.timeout, err)
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
	req    []byte // shared read-only with the monitor
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
	h := pr.prober.probe(ctx, pr.addr, pr.req)
	if ctx.Err() != nil {
		return
	}
	pr.root.Send(pr.self, &messages.ProbeFinished{Round: pr.round, Index: pr.index, Health: h})
}
