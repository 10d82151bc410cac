// Package health implements the HealthMonitor actor: it decides when to probe the backends,
// runs one probe round at a time, and tells the Dispatcher what each round found.
//
// What it owns: the probe schedule (a timer re-armed tick by tick), the state of the running
// round (which backends have reported), the flag that one more round is wanted, and what it last
// knew of each backend (to log transitions). It owns no connection for longer than one probe.
//
// When rounds run:
//   - one at start-up (on *actor.Started);
//   - one every Config.Interval: a *messages.HealthTick it sends itself with the scheduler's
//     SendOnce and re-arms when the tick is handled. The tick carries a generation; a tick from
//     a cancelled timer or from a previous incarnation is ignored. A tick that fires while a
//     round is running is skipped (the running round is at most Config.Timeout old);
//   - one on *messages.HealthCheckDue (from the Dispatcher after every R picks) or
//     *messages.RunHealthRound (tests, operators). Notices that arrive while a round runs are
//     coalesced into at most one more round, started as soon as the running one ends.
//
// A round probes every backend concurrently, one goroutine per backend, each on a fresh TCP
// connection that must connect, take the request and deliver the whole answer within
// Config.Timeout. The request is exactly
//
//	GET /healthcheck HTTP/1.1\r\nHost: <host:port>\r\n\r\n
//
// and the answer is judged by a Parser (Classic: status 200, a Content-Length matching the body,
// body "<errors>\n<entries>" with an optional trailing newline). Anything else is down: a refused
// or reset connection, no complete answer before the deadline (a backend that accepts and never
// answers), any other status (404 from a backend with logging off), a malformed body, bytes
// without HTTP framing.
//
// Messages it takes: the notices above; *messages.ProbeFinished from its probe goroutines (a
// result for a round other than the running one is ignored); *messages.ProbePanicked from a
// probe goroutine that panicked.
//
// Messages it sends: one *messages.HealthReport per round to Config.Dispatcher, when every
// backend of the round has reported, with a fresh Backends slice indexed like Config.Backends
// that nobody modifies afterwards. Round numbers increase by one per round within an
// incarnation and start from a random base in each incarnation (see Failure modes).
//
// Logging: "backend up" and "backend down" at Info when a backend's state differs from what this
// incarnation last saw (so the first round logs every backend once), with the backend's address
// and the reason it is down; one "round finished" line per round at Debug.
//
// Failure modes: a probe goroutine recovers its own panic and reports it as
// *messages.ProbePanicked; the monitor re-panics in Receive, so its supervisor decides (a
// restart begins again with a start-up round). The PID and the mailbox survive a restart, so
// results and ticks sent to the previous incarnation may still arrive; round numbers and tick
// generations start from a fresh random base per incarnation so that they match nothing, and a
// ProbePanicked of such a round is logged at Error rather than repeated. On Stopping or
// Restarting the timer is cancelled and the running round abandoned: its probes' connections are
// interrupted at once, and they report nothing. A report is sent even when every backend is
// down; a backend down at start-up is not an error.
package health
