// Package forwarder implements the Forwarder: one per client connection, serving the
// connection's requests in order for as long as it stays open, as an explicit state machine on
// an event loop (package evloop).
//
// # Engine and loops
//
// The Acceptor owns an Engine: one event loop per core, each a goroutine locked to its thread
// with an epoll instance. Every loop watches the listener (Engine.Listen; EPOLLEXCLUSIVE, so a
// connection wakes one loop), accepts, and asks the Acceptor, whose mailbox then runs on the
// same thread, whether to serve the connection; Engine.AdoptOn gives it back to that loop, which
// owns it from then on, with the upstream connections of its exchanges and an
// idle pool of upstream connections per backend, whose sockets it watches: a backend that
// closes a pooled connection (or sends on it unasked) has it dropped when the event comes, so
// nobody picks a dead connection and nothing peeks before reuse. Long bodies splice through a
// pipe (pipe_linux.go). The process runs with a P per loop on top of GOMAXPROCS, so a sleeping
// loop keeps its P (evloop.Loop.RawWait) and the rest of the runtime keeps its own.
//
// # The Forwarder
//
// A Forwarder (conn) is a Handler of its loop. Its PID is a small protoactor Process
// (connProc) registered in the actor system: what actors send to it is posted to its loop, so
// the Dispatcher answers it like any actor. Its handlers (readiness, its deadline, a message) run
// one at a time on the loop's thread, every system call in them is non-blocking, and nothing
// else touches its state. Its states, and what each waits for:
//
//	idle          the first byte of the next request (idle timeout); holds no buffer
//	readingHead   the rest of a head (header timeout); 400/414/431/408 on failure
//	picking       the Dispatcher's BackendPicked or NoBackend (pick timeout)
//	connecting    the non-blocking connect (connect timeout); a refusal picks again
//	sending       room upstream, and the request body from the client (body timeout)
//	awaitingHead  the response head (response timeout; CheckLease when CheckAfter passes;
//	              the end of a 100-continue wait)
//	relaying      the response body (body timeout)
//	tunnel        bytes both ways after 101 (idle timeout once one side ended)
//	flushing      its own answer going out (then close, the next request, or back)
//
// Per request it sends the Dispatcher a PickBackend (its own, reused: see conn.pick), with the
// previous lease's release folded in when the next request is already buffered, or a
// ReleaseLease on its own when the client goes quiet (reused under the protocol on conn.rel);
// when the response head is overdue, a CheckLease. It takes *messages.BackendPicked,
// *messages.NoBackend and *messages.LeaseVerdict (replies to its PID), *messages.Drain (finish
// the request in flight, then close; Engine.Drain has every loop do the same for all its
// Forwarders) and *messages.InjectCrash (test builds only). When its connection closes it sends
// the Acceptor *messages.ConnEnded.
//
// # Counting and the access log
//
// Every request that ends (answered, refused or cut off) is counted by its loop in the loop's
// own messages.TrafficStats: by backend, method class and status class, with its whole duration,
// the time to the backend's response head, bytes in and out, retries, the upstream connections
// dialled, reused and found stale, and the load balancer's own answers by reason
// (account_linux.go). Engine.Stats has every loop send a copy (*messages.LoopStats) to the
// asker; nothing is sent per request. With Config.AccessLog, the loop also formats a line per
// request (JSON or combined, accesslog.go) into a 64 KiB batch and sends the batch to the access
// log writer (*messages.AccessLogBatch) when it is nearly full or 200 ms old, and when the loop
// closes.
//
// When an exchange fails before anything of an answer reached the client, the request may go to
// another backend (a pick with Retry, which never returns to a backend already tried): after a
// refused connect, always; after the backend broke the connection before answering (killed,
// say), once, when the request can be sent again (an idempotent method, and no body or one held
// in the buffer); and when the Dispatcher says, on a CheckLease, that the backend is stalled,
// ejected or down, under the same condition (a request that cannot be sent again waits for its
// answer until the response timeout). A request never goes anywhere twice: a POST is sent once.
//
// Failure modes: a panic in a handler is recovered by the loop and reaches the Forwarder's
// Crashed: the client gets the load balancer's error if nothing of an answer was sent, the
// connection closes, its lease goes back, and the Acceptor, its supervisor, gets ConnEnded with
// the panic. It costs that connection only; the loop and every other connection go on. A late
// answer to a Forwarder that has ended is dropped, and a grant in it given back (ForgetHolder).
//
// Linux only: on another system the build stops with a message (unsupported.go).
package forwarder
