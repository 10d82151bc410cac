//go:build linux

package forwarder

import (
	"bufio"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/actors/dispatcher"
	"github.com/loadbalancer/loadbalancer/messages"
)

const smallResponse = "HTTP/1.1 200 OK\r\nContent-Length: 32\r\n\r\n0123456789abcdef0123456789abcdef"

// fixedBackend answers every request on a connection with smallResponse, allocating nothing per
// request (so the benchmark's allocation count is the proxy's).
func fixedBackend(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	conns := make(chan net.Conn, 64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				resp := []byte(smallResponse)
				for {
					// Requests end with an empty line.
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) == 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		for len(conns) > 0 {
			(<-conns).Close()
		}
		wg.Wait()
	})
	return ln.Addr().String()
}

// BenchmarkLoopProxyRequest is one small keep-alive request at a time through a Forwarder on an
// event loop, a real Dispatcher, a pooled upstream connection and loopback sockets: the whole hot
// path. Its allocs/op are the allocations per proxied request (target: at most 2); both left are
// protoactor's, a closure each time the Dispatcher's idle mailbox is scheduled (pick, release).
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
	defer func() { e.Close(); e.Wait() }()
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
