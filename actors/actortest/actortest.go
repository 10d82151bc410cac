// Package actortest stands in for actors in tests, as net/http/httptest does for net/http: a
// Probe is an actor that records every message it receives on a channel, so a test can pass its
// PID where the actor under test expects a peer and assert on exactly what that actor sends.
package actortest

import (
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Wait is the generous deadline for an expected message. Tests never sleep to synchronise; they
// wait for a message with this deadline.
const Wait = 5 * time.Second

// NewSystem returns an actor system with protoactor's own logging silenced, shut down when the
// test ends.
func NewSystem(t testing.TB) *actor.ActorSystem {
	t.Helper()
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}))
	t.Cleanup(sys.Shutdown)
	return sys
}

// Received is one message a Probe got, with its sender.
type Received struct {
	Msg    any
	Sender *actor.PID
}

// Probe is an actor that records the user messages it receives (lifecycle messages excepted) on
// a buffered channel.
type Probe struct {
	t      testing.TB
	system *actor.ActorSystem
	PID    *actor.PID
	C      chan Received
}

// NewProbe spawns a probe in system; it is stopped when the test ends.
func NewProbe(t testing.TB, system *actor.ActorSystem) *Probe {
	t.Helper()
	p := &Probe{t: t, system: system, C: make(chan Received, 1024)}
	props := actor.PropsFromFunc(func(ctx actor.Context) {
		switch ctx.Message().(type) {
		case *actor.Started, *actor.Stopping, *actor.Stopped, *actor.Restarting:
			return
		}
		p.C <- Received{Msg: ctx.Message(), Sender: ctx.Sender()}
	})
	p.PID = system.Root.Spawn(props)
	t.Cleanup(func() { _ = system.Root.StopFuture(p.PID).Wait() })
	return p
}

// Next returns the next message the probe receives, failing the test if none arrives in time.
func (p *Probe) Next() Received {
	p.t.Helper()
	select {
	case r := <-p.C:
		return r
	case <-time.After(Wait):
		p.t.Fatalf("probe: no message within %v", Wait)
		return Received{}
	}
}

// Expect waits for the next message and checks that it has type T; it returns the message.
func Expect[T any](p *Probe) T {
	p.t.Helper()
	r := p.Next()
	m, ok := r.Msg.(T)
	if !ok {
		var want T
		p.t.Fatalf("probe: got %T %+v, want %T", r.Msg, r.Msg, want)
	}
	return m
}

// ExpectWithin is Expect with a deadline of d.
func ExpectWithin[T any](p *Probe, d time.Duration) T {
	p.t.Helper()
	select {
	case r := <-p.C:
		m, ok := r.Msg.(T)
		if !ok {
			var want T
			p.t.Fatalf("probe: got %T %+v, want %T", r.Msg, r.Msg, want)
		}
		return m
	case <-time.After(d):
		var want T
		p.t.Fatalf("probe: no %T within %v", want, d)
		var zero T
		return zero
	}
}

// ExpectNothing checks that the probe receives nothing for d.
func (p *Probe) ExpectNothing(d time.Duration) {
	p.t.Helper()
	select {
	case r := <-p.C:
		p.t.Fatalf("probe: got unexpected %T %+v", r.Msg, r.Msg)
	case <-time.After(d):
	}
}

// Recv waits for a value on a channel with the default deadline (for reply endpoints).
func Recv[T any](t testing.TB, c <-chan any) T {
	t.Helper()
	select {
	case v := <-c:
		m, ok := v.(T)
		if !ok {
			var want T
			t.Fatalf("got %T %+v, want %T", v, v, want)
		}
		return m
	case <-time.After(Wait):
		var want T
		t.Fatalf("no %T within %v", want, Wait)
		var zero T
		return zero
	}
}

// Equal fails the test with "got X, want Y" unless got and want are deeply equal.
func Equal(t testing.TB, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: got %s, want %s", what, show(got), show(want))
	}
}

func show(v any) string { return fmt.Sprintf("%+v", v) }
