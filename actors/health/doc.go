// Package health implements the HealthMonitor actor: it decides when to probe the backends,
// runs one probe round at a time, keeps a verdict per backend (up or down, after the rise and
// fall thresholds), and tells the Dispatcher what each round concluded.
//
// What it owns: the backend table as it knows it, the probe schedule (a timer re-armed tick by
// tick), the notice gap timer, the state of the running round (which backends have reported),
// the rounds asked for and not yet started, and per backend its Checker, its verdict, the run of
// probes that disagree with it, the latest passed probe's counters and the latest failure's
// reason. It owns no connection for longer than one probe. Its Config is read-only (a
// *messages.Reconfigure replaces it, see Settings), and each backend's Checker is shared
// read-only with that backend's probe goroutines (a table or settings change replaces a Checker,
// never changes one).
//
// # When rounds run
//
//   - one at start-up (on *actor.Started), and one when a *messages.Reconfigure turns health
//     checking on (from KindNone);
//   - one every Config.Interval: a *messages.HealthTick it sends itself with the scheduler's
//     SendOnce and re-arms when the tick is handled, or, an Interval from then, when a
//     Reconfigure changes the interval. The tick carries a generation; a tick from a cancelled timer or from a
//     previous incarnation is ignored. A tick that fires while a round is running is skipped
//     (the running round is at most Config.Timeout old);
//   - one on *messages.RunHealthRound (sent by tests; nothing in the load balancer sends it
//     yet): at once, or, when a round is running, as soon as it ends;
//   - one after a *messages.SetBackends that added a backend or brought one back, in the same
//     way (at once, or as soon as the running round ends), so that the Dispatcher learns of
//     the backend promptly (see The backend table);
//   - one on *messages.HealthCheckDue (from the Dispatcher after every R picks), no sooner than
//     Config.NoticeGap (default 100ms) after the previous round of any kind ended, so that heavy
//     traffic cannot run rounds back to back. A notice that comes while a round runs waits for
//     its end and then for the gap; one that comes within the gap waits for a
//     *messages.NoticeGapElapsed, a timer message the monitor sends itself with SendOnce (one at a
//     time, with a generation like the tick's). A waiting notice is never dropped: its round
//     starts when the gap has passed, unless a round of any kind starts first, which answers it.
//     Any number of requests waiting together make one round. A negative NoticeGap means no
//     gap: a notice then starts a round as soon as none is running.
//
// # Check kinds
//
// A round probes every backend concurrently, one goroutine per backend, each on a fresh TCP
// connection; connecting and the whole check must finish within Config.Timeout. What a probe
// does is its backend's Checker, built from Config.Check:
//
//   - classic (the zero Check): the request is exactly
//     "GET /healthcheck HTTP/1.1\r\nHost: <host:port>\r\n\r\n", and the answer is judged by
//     Classic: status 200, a Content-Length matching the body, body "<errors>\n<entries>" with
//     an optional trailing newline. A passed probe is counted: it carries the backend's
//     counters (Counted, Errors, Entries). Anything else fails: any other status (404 from a
//     backend with logging off), a malformed body, bytes without HTTP framing, more than 16 KiB
//     without a complete answer.
//   - http: "METHOD PATH HTTP/1.1" with Host (the backend's address unless Check.Host says
//     otherwise), User-Agent: loadbalancer-health and Connection: close. METHOD is GET or HEAD,
//     PATH "/" unless configured. The probe passes when the status is in Check.Status (200-399
//     unless configured) and, when Check.Body is set, the body's first MaxCheckBody bytes
//     contain it (framing by Content-Length, chunked or close, read by net/http). Without
//     Check.Body the body is not read. Failures say why: "status 404 not in 200-399",
//     `body does not contain "ok"`, a response head longer than 16 KiB. Not counted.
//   - tcp: the probe passes when the connection is established; nothing is sent. Not counted.
//   - none: nothing is probed and no timer is armed. At start-up (or when a Reconfigure turns
//     health checking off) the monitor sends one *messages.HealthReport with every backend up
//     (not counted), and one more after each change of the backend table (every backend up but
//     the removed ones); it ignores ticks, notices and RunHealthRound.
//
// For every kind a probe also fails on a refused or reset connection, and on a deadline: the
// reason then says "no connection within <Timeout>" or "no complete answer within <Timeout>".
//
// # The backend table
//
// The backends are a table that may grow at run time; index i names the same address for the
// life of the process, so every per-backend slice, report line and stats entry is indexed by
// it. The monitor starts with Config.Backends, and on *actor.Started sends
// *messages.GetBackends{ReplyTo: itself} to its parent (the lb supervisor; not when it has
// none), which answers with the current table as a *messages.SetBackends: after a restart the
// monitor does not fall back to the start-up list. It takes *messages.SetBackends from the lb
// at every change, applies it, and answers ReplyTo (when set) with *messages.BackendsSet. The
// table is never shorter than the one before:
//
//   - a new backend (a slot beyond the old table) gets a Checker built from Config.Check with
//     its own settings, dialling its address as given (the slot's Dial is for the event loops),
//     and no verdict: its first probe decides at once, as at start-up. A round starts at once
//     (or right after the running one), since the Dispatcher gives it no request before a
//     report has found it up; with KindNone a report saying it is up is sent at once;
//   - a removed backend (Removed) is no longer probed: a probe of it the running round waits
//     for is dropped (the round may end then), and its line in every report is Up false with
//     Reason "removed". Its stats stop where they are;
//   - a backend that comes back (un-removed at its old index) is treated as new: a fresh
//     Checker and verdict, a round at once; its stats go on from where they stopped;
//   - a backend whose own check settings (Backend.Health) changed gets a new Checker from the
//     next probe on and keeps its verdict. Settings that make no valid check (the lb validates
//     them first) are logged at Error, and every probe of that backend fails saying why.
//
// A round probes the table as it was when the round started. A table change while it runs
// keeps the results of the backends that are still there; the report, sent when its last
// wanted probe has finished, covers the table as it is then, except that it stops just before
// the first backend with no verdict yet (new or back during the round, and probed by the round
// that follows at once): the Dispatcher keeps what it knew of the backends past the end of a
// report. A result of a dropped probe, for an index the round did not probe, or for a removed
// backend is ignored.
//
// # Settings
//
// The lb supervisor sends *messages.Reconfigure{Config: *Config} on a reload: the settings for
// what follows. Its Backends are ignored (the table comes by SetBackends); a nil Dispatcher,
// Logger or Dial keeps the current one. The settings are checked first: negative Interval,
// Timeout, Rise or Fall, a Check that is not valid, or one that is not valid with the own
// settings of a backend of the current table (removed ones aside) are logged at Error, and the
// current settings stay, all of them. Otherwise, from now on:
//
//   - Interval: the tick is re-armed, an Interval from now (a tick of the old timer is stale);
//   - Timeout: the rounds started from now use it;
//   - Check: every backend not removed gets a new Checker from the new Check with its own
//     settings, used from the next round (no round starts for it); verdicts stay. From KindNone
//     to a probing kind, probing starts as at start-up: every backend's verdict is decided
//     afresh by its first probe, in a round that starts at once, and the tick is armed. To
//     KindNone, the timers are cancelled, the rounds asked for are forgotten, the running round
//     is abandoned (its probes are interrupted; it reports nothing), and the report of every
//     backend up is sent;
//   - Rise and Fall judge the rounds started from now; the runs of disagreeing probes so far
//     stay. NoticeGap holds back the notices from now, one waiting included.
//
// Apart from a switch to KindNone, a round running when the settings change finishes as it
// started: its probes keep their Checkers and timeout, and its results are judged with the
// Rise and Fall it started with. Settings that change nothing are not logged at Info.
//
// # Rise and fall
//
// The first probe result of a backend in an incarnation decides its verdict at once. After
// that a backend that is up goes down only after Config.Fall failed probes in a row, and one
// that is down comes back up after Config.Rise passed probes in a row (zero means 1 each: one
// probe decides, the classic behaviour). A probe that agrees with the verdict resets the run.
//
// # Messages
//
// It takes: the requests for rounds above; *messages.ProbeFinished from its probe goroutines (a
// result for a round other than the running one is ignored, and each carries when the probe
// started and how long it took); *messages.ProbePanicked from a probe goroutine that panicked;
// *messages.SetBackends from the lb supervisor (see The backend table); *messages.Reconfigure
// from the lb supervisor (see Settings); *messages.StatsRequest from the admin listener, answered with *messages.HealthStats: the
// rounds ended, and per backend the checks passed and failed, their durations and the last
// messages.HealthHistory results (its own state, counted as results come; a restart starts
// them again), for every slot of the table, removed ones included.
//
// It sends: *messages.GetBackends to its parent when it starts; *messages.BackendsSet to a
// SetBackends' ReplyTo; one *messages.HealthReport per round to Config.Dispatcher, when every
// backend of the round has reported, with a fresh Backends slice indexed like the backend table
// (Config.Backends at first) that the Dispatcher owns from then on and nobody modifies. A
// removed backend's line is Up false with Reason "removed". Any other line holds the verdict
// (Up); the latest passed probe's counters when it counted them (Counted, Errors, Entries; kept
// while a later probe fails); and Reason, the latest failed probe's reason, while the backend is
// down or while its latest probe failed though it is still up within its fall threshold (empty
// otherwise). Round numbers increase by one per round within an incarnation and start from a
// random base in each incarnation (see Failure modes).
//
// # Logging
//
// All at Debug (the Dispatcher logs the changes that alter routing: "backend up" at Info,
// "backend down" at Warn): "backend up" and "backend down" when a backend's verdict changes (so
// the first round logs every backend once), with its address and, when down, the reason; "probe
// failed, backend still up" for a failure within the fall threshold; one "round finished" line
// per round; "backend added", "backend removed", "backend back" and "backend's health check
// changed" as a table change is applied. At Info: "health settings changed" on a Reconfigure,
// with the settings that changed and their new values (check, interval, timeout, rise, fall,
// notice_gap). At Error: a backend's check settings that make no valid check, a table that
// breaks its rules (shorter than before, another address at an index), which is applied as well
// as it can be, and "health settings not valid; the current ones are kept".
//
// # Failure modes
//
// A probe goroutine recovers its own panic and reports it as *messages.ProbePanicked; the
// monitor re-panics in Receive, so its supervisor decides (a restart begins again with a
// start-up round over Config.Backends and asks its parent for the table, and verdicts are
// decided afresh by each backend's first probe; its settings are those of the Config it was
// spawned with until the lb, answering GetBackends, sends the last reload's Reconfigure again). The PID and
// the mailbox survive a restart, so results and timer messages sent to the previous incarnation
// may still arrive; round numbers and timer generations start from a fresh random base per
// incarnation so that they match nothing, and a ProbePanicked of such a round is logged at Error
// rather than repeated. On Stopping or Restarting the timers are cancelled, the rounds asked for
// are forgotten, and the running round is abandoned: its probes' connections are interrupted at
// once, and they report nothing. A report is sent even when every backend is down; a backend
// down at start-up is not an error.
package health
