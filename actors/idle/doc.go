// Package idle implements the IdleWatcher: the actor that holds idle keep-alive client
// connections while no goroutine waits on them.
//
// An idle connection with a goroutine blocked in Read costs that goroutine's stack (4 KiB or
// more) for as long as the client keeps it open; ten thousand of them cost more than everything
// else the load balancer holds. So a Forwarder's I/O goroutine waits for the next request only
// for a short linger, then gives back its buffers and ends, and the Forwarder hands the
// connection to the IdleWatcher (messages.WatchIdle). The IdleWatcher registers it with an
// epoll instance of its own, one-shot, and wakes the Forwarder (messages.IdleWake) when a byte
// arrives, the client hangs up, or the keep-alive idle timeout passes; the Forwarder then starts
// a new goroutine, or closes the connection.
//
// Ownership: the connection stays the Forwarder's throughout (only it closes it); the IdleWatcher
// owns its epoll instance, the table of watches keyed by descriptor and the deadline heap, all
// touched only by Receive. One poll goroutine blocks in epoll_wait and reports ready descriptors
// by message (messages.IdleReady); it touches nothing else.
//
// Descriptors are reused after a close, so a report can name a descriptor that now belongs to
// another connection: that Forwarder wakes for nothing, finds nothing to read within its linger,
// and parks again. A connection its Forwarder closes while watched leaves the epoll set with the
// close; its watch entry goes when a later watch takes the descriptor or its deadline passes.
//
// On a restart the IdleWatcher wakes every connection it watched, so none is left without a
// goroutine or a watch. Outside Linux there is no IdleWatcher (Supported is false): idle
// connections keep their goroutine.
package idle
