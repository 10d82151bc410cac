// Package evloop is the event loop the Forwarders run on: one loop per core, each a goroutine
// locked to an OS thread that owns an epoll instance, the sockets registered with it, a heap of
// deadlines and an inbox. Everything a loop owns is touched only on its thread, so its handlers
// need no locks.
//
// A Handler is whatever owns sockets on a loop (a Forwarder's connection state machine). The
// loop calls it for readiness (Ready), for its deadline (Expired) and for messages other
// goroutines post to it (Deliver), one call at a time, each inside a recover: a panic reaches
// the handler's Crashed, never the process.
//
// Sockets are registered once, edge-triggered, for input, output and the peer's close
// (EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET): a handler remembers what the last event said and makes
// a system call only when it can succeed, so an idle socket costs nothing and a busy one no
// failed reads. Every system call a handler makes is non-blocking.
//
// Other goroutines reach a loop through Post, which puts a message in the loop's inbox (a
// channel) and, only when the loop may be asleep in epoll_wait, writes to its eventfd. Whether
// it may be asleep is a token in a one-slot channel: the loop holds it while it runs, gives it up
// just before it blocks, and a poster that finds the slot empty fills it and writes the
// eventfd. Channels are the only synchronisation.
//
// The loop polls without blocking first and with the runtime's system-call bookkeeping only
// when it has to wait: reads, writes and a poll that finds events never enter the scheduler.
package evloop
