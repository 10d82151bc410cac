package dispatcher

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/actors/reply"
	"github.com/loadbalancer/loadbalancer/messages"
)

// placements are the ways to run the Dispatcher's mailbox the benchmarks compare: inline on the
// sender's goroutine (Props, what the load balancer does) and on a goroutine protoactor starts
// when the idle mailbox gets a message (its default).
var placements = []struct {
	name  string
	props func(*Config) *actor.Props
}{
	{"inline", Props},
	{"goroutine", func(cfg *Config) *actor.Props { return actor.PropsFromProducer(New(cfg)) }},
}

// BenchmarkPickRelease measures what a request costs at the Dispatcher on a keep-alive
// connection: one PickBackend with the previous lease folded in, answered on a reply endpoint
// (standing in for the Forwarder's PID), by one goroutine.
func BenchmarkPickRelease(b *testing.B) {
	for _, pl := range placements {
		b.Run(pl.name, func(b *testing.B) { benchPickRelease(b, pl.props) })
	}
}

func benchPickRelease(b *testing.B, props func(*Config) *actor.Props) {
	sys := actortest.NewSystem(b)
	cfg := &Config{Backends: []messages.Backend{{Addr: "a:1"}, {Addr: "b:1"}}, N: 1000, R: 1 << 30}
	d := sys.Root.Spawn(props(cfg))
	holder := sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	ep := reply.New(sys, 4)
	defer ep.Close()
	pick := &messages.PickBackend{Holder: holder, ReplyTo: ep.PID()}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sys.Root.Send(d, pick)
		m := (<-ep.C).(*messages.BackendPicked)
		pick.Release = messages.Release{Lease: m.Lease, Outcome: messages.OutcomeOK}
	}
}

// BenchmarkPickThenRelease is the same with the release sent on its own after each response
// (a client that waits for the response before sending its next request).
func BenchmarkPickThenRelease(b *testing.B) {
	for _, pl := range placements {
		b.Run(pl.name, func(b *testing.B) { benchPickThenRelease(b, pl.props) })
	}
}

func benchPickThenRelease(b *testing.B, props func(*Config) *actor.Props) {
	sys := actortest.NewSystem(b)
	cfg := &Config{Backends: []messages.Backend{{Addr: "a:1"}, {Addr: "b:1"}}, N: 1000, R: 1 << 30}
	d := sys.Root.Spawn(props(cfg))
	holder := sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	ep := reply.New(sys, 4)
	defer ep.Close()
	pick := &messages.PickBackend{Holder: holder, ReplyTo: ep.PID()}
	rel := &messages.ReleaseLease{Holder: holder}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sys.Root.Send(d, pick)
		m := (<-ep.C).(*messages.BackendPicked)
		rel.Release = messages.Release{Lease: m.Lease, Outcome: messages.OutcomeOK}
		sys.Root.Send(d, rel)
	}
}

// BenchmarkPickReleaseParallel runs many holders at once, as under load.
func BenchmarkPickReleaseParallel(b *testing.B) {
	for _, pl := range placements {
		b.Run(pl.name, func(b *testing.B) { benchPickReleaseParallel(b, pl.props) })
	}
}

func benchPickReleaseParallel(b *testing.B, props func(*Config) *actor.Props) {
	sys := actortest.NewSystem(b)
	cfg := &Config{Backends: []messages.Backend{{Addr: "a:1"}, {Addr: "b:1"}}, N: 100000, R: 1 << 30}
	d := sys.Root.Spawn(props(cfg))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		holder := sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
		ep := reply.New(sys, 4)
		defer ep.Close()
		pick := &messages.PickBackend{Holder: holder, ReplyTo: ep.PID()}
		for pb.Next() {
			sys.Root.Send(d, pick)
			m := (<-ep.C).(*messages.BackendPicked)
			pick.Release = messages.Release{Lease: m.Lease, Outcome: messages.OutcomeOK}
		}
	})
}
