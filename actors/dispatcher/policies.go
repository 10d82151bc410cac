package dispatcher

import (
	"fmt"
	"math"
	"strings"
)

// PolicyNames lists the names NewPolicy accepts, in the order --help shows them.
var PolicyNames = []string{"classic", "round-robin", "least-request", "random", "p2c", "peak-ewma", "hash"}

// defaultHashBalance is the hash policy's load bound factor when PolicyConfig.HashBalance is
// zero: a backend takes a key's request while it has fewer than 1.25 times its fair share in
// flight.
const defaultHashBalance = 1.25

// PolicyConfig chooses and tunes the balancing policy. The zero value is the classic rule.
type PolicyConfig struct {
	// Name is one of PolicyNames. Empty means "classic": fewest entries, then fewest errors,
	// then listing order.
	Name string
	// HashBalance is the hash policy's load bound factor c: a key stays on its backend while
	// that backend has fewer than c times its weighted share of the requests in flight, and
	// goes to the next backend on the ring otherwise. Lower spreads hot keys sooner, higher
	// keeps keys on their backend longer. Zero means 1.25; otherwise it must be at least 1.
	// Other policies ignore it.
	HashBalance float64
	// Seed seeds the random source of the random, p2c and peak-ewma policies, for
	// reproducible runs. Zero means a random seed. Other policies ignore it.
	Seed uint64
}

// NewPolicy returns a new policy as cfg says, or an error naming what is wrong with cfg. The
// policy keeps state of its own, so each Dispatcher needs its own.
func NewPolicy(cfg PolicyConfig) (Policy, error) {
	if b := cfg.HashBalance; b != 0 && (!(b >= 1) || math.IsInf(b, 1)) {
		return nil, fmt.Errorf("dispatcher: hash balance must be a number of at least 1, got %v", b)
	}
	switch cfg.Name {
	case "", "classic":
		return LeastLoaded{}, nil
	case "round-robin":
		return &RoundRobin{}, nil
	case "least-request":
		return &LeastRequest{}, nil
	case "random":
		return NewRandom(cfg.Seed), nil
	case "p2c":
		return NewP2C(cfg.Seed), nil
	case "peak-ewma":
		return NewPeakEWMA(cfg.Seed), nil
	case "hash":
		return NewHash(cfg.HashBalance), nil
	}
	return nil, fmt.Errorf("dispatcher: unknown policy %q, want one of %s", cfg.Name, strings.Join(PolicyNames, ", "))
}
