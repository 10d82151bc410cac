package lb

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
)

// counter counts the "tick"s it gets and reports the count to the probe on "report"; "boom"
// panics. On Started it spawns a child that reports "child stopped" when it stops.
type counter struct {
	probe *actor.PID
	n     int
}

type report struct {
	name  string
	n     int
	child bool // its child is still there
}

func (c *counter) Receive(ctx actor.Context) {
	switch ctx.Message() {
	case "tick":
		c.n++
	case "report":
		ctx.Send(c.probe, report{name: ctx.Self().Id, n: c.n, child: len(ctx.Children()) == 1})
	case "boom":
		panic("test: boom")
	}
	if _, ok := ctx.Message().(*actor.Started); ok && len(ctx.Children()) == 0 {
		ctx.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	}
}

func TestAcceptorIsResumedOthersRestarted(t *testing.T) {
	sys := actortest.NewSystem(t)
	probe := actortest.NewProbe(t, sys)
	kids := make(chan [2]*actor.PID, 1)
	parent := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actor.Started); ok {
			props := actor.PropsFromProducer(func() actor.Actor { return &counter{probe: probe.PID} })
			a, _ := ctx.SpawnNamed(props, acceptorName)
			o, _ := ctx.SpawnNamed(props, "dispatcher")
			kids <- [2]*actor.PID{a, o}
		}
	}, actor.WithSupervisor(newChildStrategy())))
	t.Cleanup(func() { _ = sys.Root.StopFuture(parent).Wait() })
	k := <-kids
	for _, pid := range k {
		sys.Root.Send(pid, "tick")
		sys.Root.Send(pid, "boom")
		sys.Root.Send(pid, "report")
	}
	acc := actortest.Expect[report](probe)
	other := actortest.Expect[report](probe)
	if acc.name != k[0].Id {
		acc, other = other, acc
	}
	// Resumed: the Acceptor kept its state and its children (every Forwarder, in the real tree).
	actortest.Equal(t, "acceptor after a panic", acc, report{name: k[0].Id, n: 1, child: true})
	// Restarted: a fresh actor (its old children were stopped; Started made a new one).
	actortest.Equal(t, "other child after a panic", other, report{name: k[1].Id, n: 0, child: true})
}
