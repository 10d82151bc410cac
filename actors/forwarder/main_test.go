package forwarder

import (
	"os"
	"testing"

	"github.com/google/uuid"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
)

// TestMain fails the run if a goroutine of this package outlives the tests. Request IDs come
// from uuid's random pool, as in the daemon (cmd/loadbalancer), so the benchmarks count the
// allocations the daemon makes.
func TestMain(m *testing.M) {
	uuid.EnableRandPool()
	os.Exit(actortest.RunCheckingLeaks(m, "/actors/forwarder."))
}
