package health

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// TestTCPCheckMonitor runs the tcp check in a monitor: a listening port is up whatever it says
// (here: nothing, it closes at once), a closed port is down.
func TestTCPCheckMonitor(t *testing.T) {
	listening := serve(t, func(net.Conn, <-chan struct{}) {})
	dead := deadAddr(t)
	_, dispatcher, _ := spawnMonitor(t, &Config{
		Backends: backends(listening.addr, dead),
		Check:    Check{Kind: KindTCP},
		Interval: never,
	})
	r := actortest.Expect[*messages.HealthReport](dispatcher)
	checkReport(t, r, messages.BackendHealth{Up: true}, down)
	wantDown(t, r.Backends[1], "dial", "refused")
}

// TestTCPCheckSendsNothing checks that the tcp check writes nothing and closes the connection.
func TestTCPCheckSendsNothing(t *testing.T) {
	got := make(chan []byte, 1)
	srv := serve(t, func(c net.Conn, _ <-chan struct{}) {
		b, _ := readRequest(c) // returns at the prober's close
		got <- b
	})
	actortest.Equal(t, "health", probeWith(t, srv.addr, actortest.Wait, Check{Kind: KindTCP}), messages.BackendHealth{Up: true})
	select {
	case b := <-got:
		actortest.Equal(t, "bytes sent", string(b), "")
	case <-time.After(actortest.Wait):
		t.Fatal("the tcp check did not close its connection")
	}
}

// TestTCPCheckConnectTimeout checks the reason of a connection that is not established in time.
func TestTCPCheckConnectTimeout(t *testing.T) {
	p := &prober{
		timeout: 100 * time.Millisecond,
		dial: func(ctx context.Context, _, addr string) (net.Conn, error) {
			<-ctx.Done() // a SYN nobody answers
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ctx.Err()}
		},
	}
	got := p.probe(context.Background(), "192.0.2.1:80", tcpCheck{})
	wantDown(t, got, "no connection within 100ms", "dial")
}
