package health

import (
	"strings"
	"testing"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

func TestConfigDefaults(t *testing.T) {
	var c Config
	actortest.Equal(t, "interval", c.interval(), 3*time.Second)
	actortest.Equal(t, "timeout", c.timeout(), 2*time.Second)
	if c.logger() == nil || c.dial() == nil {
		t.Fatal("zero Config has no logger or dialer")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none means valid
	}{
		// The shape cmd/loadbalancer builds.
		{"valid", Config{Backends: backends("127.0.0.1:8081", "localhost:8082")}, nil},
		// Start-up must name the problem, not probe nothing forever.
		{"no backend", Config{}, []string{"no backend"}},
		// Every problem at once, not only the first.
		{"all problems", Config{
			Backends: []messages.Backend{{Addr: "8081"}, {Addr: ""}},
			Interval: -time.Second,
			Timeout:  -time.Second,
		}, []string{"backend 0", "backend 1", "interval", "timeout"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got nil, want an error mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("got %q, want it to mention %q", err, w)
				}
			}
		})
	}
}
