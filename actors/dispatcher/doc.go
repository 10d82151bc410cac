// Package dispatcher implements the Dispatcher actor: the only owner of the backend table, the N
// budget of requests in flight, the FIFO queue of picks waiting for a slot, and the idle
// upstream connections.
//
// Messages it takes:
//   - *messages.PickBackend from Forwarders' I/O goroutines: answered with *messages.BackendPicked
//     or *messages.NoBackend at PickBackend.ReplyTo, now or when a slot frees. A folded Release is
//     applied first.
//   - *messages.ReleaseLease from Forwarders: gives a slot back (and possibly an idle connection).
//   - *messages.HealthReport from the HealthMonitor: replaces the up/down view and the load
//     estimates of every backend.
//   - *messages.ForgetHolder from the Acceptor for every Forwarder that stops (and from a
//     Forwarder whose connection parks): its lease is released, so a Forwarder that stops or
//     crashes while holding a slot never leaks it. The Acceptor, as the Forwarders' parent, sees
//     every end; a Watch per holder would cost each connection a system message and a watcher
//     set for life.
//   - its own timers: *messages.QueueDeadline (waiting picks past their deadline get NoBackend)
//     and *messages.IdleSweep (idle connections past the idle timeout are closed).
//
// Messages it sends: the replies above, and *messages.HealthCheckDue to Config.Health after
// every R-th pick.
//
// Pick rule (the classic contract): among backends that are up or not yet probed, fewest entries,
// then fewest errors, then listing order; every pick adds one to the picked backend's entries
// until the next health report replaces the estimate with the backend's own counters.
//
// Where it runs: Props gives it protoactor's synchronized dispatcher, so its mailbox runs on the
// goroutine of a sender that finds it idle (a Forwarder's I/O goroutine, usually), which then
// has its answer before it waits; a message that finds the mailbox running is handled by the
// goroutine running it. Receive must therefore never block, and never wait for an answer from
// anyone.
//
// Failure modes: a panic in Receive restarts the Dispatcher with a fresh table (every backend
// "not yet probed", no slot in use). Leases granted by the previous incarnation are then unknown
// to it: their releases are ignored, so for a short while more than N requests may be in
// flight. Idle connections it held are lost to the garbage collector (closed by finalizers).
// Waiting picks get NoBackend when the Dispatcher stops.
package dispatcher
