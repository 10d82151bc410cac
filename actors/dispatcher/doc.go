// Package dispatcher implements the Dispatcher actor: the only owner of the backend table, the N
// budget of requests in flight, the FIFO queue of picks waiting for a slot, the balancing policy,
// the passive view of each backend (requests in flight, latency, failures in a row, ejection,
// slow start). (Idle upstream connections are the event loops': see package forwarder.)
//
// Messages it takes:
//   - *messages.PickBackend from Forwarders: answered with *messages.BackendPicked
//     or *messages.NoBackend at PickBackend.ReplyTo, now or when a slot frees. A folded Release is
//     applied first. With Retry, the same request tries again on a backend it has not tried.
//   - *messages.ReleaseLease from Forwarders: gives a slot back, with the outcome, the response
//     status and the latency.
//   - *messages.CheckLease from a Forwarder whose request has waited
//     BackendPicked.CheckAfter for its response head: answered with *messages.LeaseVerdict.
//   - *messages.HealthReport from the HealthMonitor: replaces the up/down view of every backend,
//     and with the classic check its load estimates (Counted).
//   - *messages.ForgetHolder from the Acceptor for every Forwarder whose connection ended (and
//     for a grant nobody will use: from the Forwarder that dropped it, or from itself when it
//     went to dead letters): its lease is released, so a Forwarder that ends or crashes while
//     holding a slot never leaks it. The Acceptor, as the Forwarders' supervisor, hears of every
//     end (ConnEnded); a Watch per holder would cost each connection a system message and a
//     watcher set for life.
//   - *messages.StatsRequest from the admin listener: answered with *messages.DispatcherStats,
//     a copy of its view: readiness, the budget in use, the queue and how long picks waited in
//     it, and per backend its state, since when and why, in flight, weight, latency estimate and
//     ejections (all its own state, kept as it works; see stats.go).
//   - *messages.SetBackends from the lb supervisor: the backend table (table.go: removed
//     backends drain, added ones wait for a health report); it answers *messages.BackendsSet,
//     and sends *messages.GetBackends to its parent when it starts.
//   - *messages.Reconfigure from the lb supervisor (a reload): a new Config for what follows
//     (budget, queue, policy, caps, ejection, stall, slow start); leases and the queue stay.
//   - its own timers: *messages.QueueDeadline (waiting picks past their deadline get NoBackend),
//     *messages.EjectionDue (ejections that have run their time end) and *messages.StartupDue
//     (the wait for the first health report is over).
//
// Messages it sends: the replies above, *messages.HealthCheckDue to Config.Health after every
// R-th pick (unless Config.NoHealthNotices), and *messages.ForgetHolder to itself for a
// *messages.BackendPicked that went to dead letters.
//
// Picking. A backend is a candidate when it is up (or not yet probed), not ejected, below its
// cap on requests in flight (its own MaxInFlight, or Config.MaxPerBackend), not yet tried by the
// request, and, for a backup backend, only while no other backend is up and not ejected. The Policy (see
// PolicyConfig) chooses among the candidates; the default is the classic contract's rule: fewest
// entries, then fewest errors, then listing order, where every pick adds one to the picked
// backend's entries until the next classic health report replaces the estimate with the
// backend's own counters. A pick that finds no slot free (N), or every usable backend at its cap,
// waits in the FIFO queue; one for which no backend is usable gets NoBackend at once. Until the
// first health report arrives (at most Config.HealthTimeout after start), every pick waits.
//
// What it learns from releases. Every release frees one request in flight on its backend. A
// response updates the backend's latency estimate (a peak-EWMA: a slower sample counts at once,
// faster ones pull it down with a 10 s time constant) and the time of its last answer. With
// Config.ClassicFailures (the classic check) a refused connect or a response timeout takes the
// backend down until a health report finds it up; otherwise those, and 5xx answers, count in a
// row toward ejection (Config.Eject): an ejected backend gets nothing for the base time times its
// ejections in a row, never more than Eject.MaxPercent of the backends at once. A backend that
// comes back (up after being down, or from an ejection) ramps from a tenth of its weight to all
// of it over Config.SlowStart.
//
// Stalls. Every grant says how long its request may wait for a response head before asking
// again (CheckAfter: at least Config.StallAfter and 8 times the backend's latency estimate, the
// peak-EWMA of its time to a response head). On CheckLease, a backend that has answered nothing
// for that long, while another request in flight on it is overdue too (or this one has waited
// four times as long), is stalled, provided it has been timed at all: it is ejected whatever the
// share, but never the last usable backend, and ends that ejection early at a health report,
// probed after it, that got an answer from it (Config.HealthAnswers). The verdict is Abandon
// when the request's backend is down, ejected or stalled and a backend the request has not tried
// can take it now; the Forwarder then sends the request there if it can be sent again. So a
// backend frozen with requests in flight holds their slots for a stall time, not for the
// response timeout.
//
// Where it runs: Props gives it protoactor's synchronized dispatcher, so its mailbox runs on the
// thread of a sender that finds it idle (an event loop's, usually), whose Forwarder then finds
// the answer in its loop's inbox before the loop sleeps; a message that finds the mailbox running is handled by the
// goroutine running it. Receive must therefore never block, and never wait for an answer from
// anyone.
//
// Failure modes: a panic in Receive restarts the Dispatcher with a fresh table (every backend
// "not yet probed", no slot in use, no ejection, waiting for a health report again). Leases
// granted by the previous incarnation are then unknown to it: their releases are ignored, so for
// a short while more than N requests may be in flight. Waiting picks get NoBackend, as when it
// stops. Its timers count generations from a random base
// per incarnation, so a timer of the previous one matches nothing.
package dispatcher
