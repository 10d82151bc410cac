package lb

import (
	"os"
	"testing"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
)

// TestMain fails the run if a goroutine of this package outlives the tests.
func TestMain(m *testing.M) { os.Exit(actortest.RunCheckingLeaks(m, "/actors/lb.")) }
