package forwarder

import (
	"bufio"
	"io"
	"net"
	"sync"
	"testing"
	"time"

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

// BenchmarkProxyRequest is one small request through a Forwarder and the Dispatcher to a
// backend on loopback and back, over a kept-alive client connection and a reused upstream
// connection: the whole hot path, with its allocations (process-wide, the backend allocates
// nothing). The two left are protoactor's: a mailbox that goes from idle to running allocates
// the closure it schedules, and the pick and the release each find the Dispatcher's idle.
func BenchmarkProxyRequest(b *testing.B) {
	sys := actortest.NewSystem(b)
	addr := fixedBackend(b)
	disp := sys.Root.Spawn(dispatcher.Props(&dispatcher.Config{
		Backends: []messages.Backend{{Addr: addr}}, N: 1000, R: 1 << 30}))
	client, server := loopback(b)
	cfg := &Config{Dispatcher: disp}
	fwd := sys.Root.Spawn(Props(cfg, server))
	defer func() { _ = sys.Root.StopFuture(fwd).Wait() }()

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
	for i := 0; i < 100; i++ { // warm up: buffers grown, upstream connection pooled
		one()
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(req) + len(resp)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		one()
	}
}

// BenchmarkSplicedBody measures a 64 KiB body spliced from a client connection to a dialled
// upstream connection (the copy only; the peers' reads and writes run alongside). It allocates
// nothing per body: the pipe comes from a pool and the RawConns are the ones kept.
func BenchmarkSplicedBody(b *testing.B) {
	client, src := loopback(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	dst, err := dialUpstream(ln.Addr().String(), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer dst.Close()
	backend, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer backend.Close()

	const size = 64 << 10
	done := make(chan struct{}, 2)
	go func() { // the client sends every body as fast as the buffers let it
		p := make([]byte, size)
		for i := 0; i < b.N; i++ {
			if _, err := client.Write(p); err != nil {
				break
			}
		}
		done <- struct{}{}
	}()
	go func() { // the backend reads them
		p := make([]byte, size)
		for i := 0; i < b.N; i++ {
			if _, err := io.ReadFull(backend, p); err != nil {
				break
			}
		}
		done <- struct{}{}
	}()
	var c bodyCopy
	c.client, c.clientRC = src, newSock(src).rc
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if n, err := c.copy(dst, src, size, time.Minute, nil); err != nil || n != size {
			b.Fatalf("copy: %d, %v", n, err)
		}
	}
	b.StopTimer()
	<-done
	<-done
}
