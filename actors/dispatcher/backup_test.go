package dispatcher

import (
	"testing"

	"github.com/loadbalancer/loadbalancer/messages"
)

// A backend's own MaxInFlight caps it, whatever the global cap: once it holds that many, the
// next request goes to another backend.
func TestBackendMaxInFlight(t *testing.T) {
	f := newFixture(t, Config{N: 10, Backends: []messages.Backend{
		{Addr: "127.0.0.1:1000", MaxInFlight: 1}, {Addr: "127.0.0.1:2000"}}}, 0)
	f.report(up(0, 0), up(0, 0))
	a, b, c := f.client(), f.client(), f.client()
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	b.pick(messages.Release{}, false)
	b.expectPicked(1) // 0 holds its one
	c.pick(messages.Release{}, false)
	c.expectPicked(1)
	a.release(messages.OutcomeOK)
	a.pick(messages.Release{}, false)
	a.expectPicked(0) // room again
}

// A backup takes nothing while a primary is usable, everything once none is, and nothing again
// when one is back.
func TestBackupOnlyWithoutPrimaries(t *testing.T) {
	f := newFixture(t, Config{N: 10, Backends: []messages.Backend{
		{Addr: "127.0.0.1:1000"}, {Addr: "127.0.0.1:2000", Backup: true}}}, 0)
	f.report(up(0, 0), up(0, 0))
	c := f.client()
	for range 3 {
		c.pick(messages.Release{}, false)
		c.expectPicked(0)
		c.release(messages.OutcomeOK)
	}
	f.report(down, up(0, 0))
	for range 3 {
		c.pick(messages.Release{}, false)
		c.expectPicked(1)
		c.release(messages.OutcomeOK)
	}
	f.report(up(0, 0), up(0, 0))
	c.pick(messages.Release{}, false)
	c.expectPicked(0)
	c.release(messages.OutcomeOK)

	// With the primary down and the backup down too, the answer is no backend.
	f.report(down, down)
	c.pick(messages.Release{}, false)
	c.expectNoBackend(messages.NoBackendDown)
}
