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
// The loop polls without blocking first; reads, writes and a poll that finds events never enter
// the scheduler's system-call bookkeeping. When it has to wait, it blocks in epoll_wait either
// as an ordinary system call (its P goes to other goroutines meanwhile, and a monitor thread
// hands it back at the wake-up) or, with RawWait, keeping its P: the daemon runs with a P per
// loop on top of GOMAXPROCS, so the rest of the runtime keeps its own Ps, and a wait costs no
// hand-off. Over seven interleaved pairs of runs (wrk -t2 -c64 for 4-5 s, two nginx backends)
// the median was 21% more requests/s than with the ordinary wait (one pair of the seven went the
// other way), and the runtime's monitor thread went from about 5,700 wake-ups a second to about
// 230.
package evloop
