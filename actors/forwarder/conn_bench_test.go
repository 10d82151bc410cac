//go:build linux

package forwarder

import (
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/actors/dispatcher"
	"github.com/loadbalancer/loadbalancer/messages"
)

// BenchmarkLoopProxyRequest is BenchmarkProxyRequest with the Forwarder on an event loop: one
// small keep-alive request at a time through a real Dispatcher, a pooled upstream connection and
// loopback sockets. Its allocs/op is the "allocations per proxied small request".
func BenchmarkLoopProxyRequest(b *testing.B) {
	sys := actortest.NewSystem(b)
	addr := fixedBackend(b)
	disp := sys.Root.Spawn(dispatcher.Props(&dispatcher.Config{
		Backends: []messages.Backend{{Addr: addr}}, N: 1000, R: 1 << 30}))
	acceptor := actortest.NewProbe(b, sys)
	e, err := NewEngine(&Config{Dispatcher: disp}, sys, acceptor.PID, EngineOptions{Loops: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	ln.Close()
	if err != nil {
		b.Fatal(err)
	}
	fd := rawFdTB(b, server)
	e.Adopt(fd, netip.MustParseAddrPort(client.LocalAddr().String()))

	req := []byte("GET /small HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\n\r\n")
	resp := make([]byte, len(smallResponse))
	one := func() {
		if _, err := client.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(client, resp); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ { // warm up: buffers made, upstream connection pooled
		one()
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(req) + len(resp)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		one()
	}
}
