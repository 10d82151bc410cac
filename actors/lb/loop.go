package lb

// mailboxLoop is a protoactor Dispatcher that runs one actor's mailbox on a single long-lived
// goroutine. protoactor's default starts a new goroutine each time an idle mailbox gets a
// message; for the Dispatcher actor, woken by nearly every request, that meant a goroutine
// start and a stack growing through the actor call chain per wake-up (about a tenth of the
// CPU in a profile of one request per client connection).
//
// The mailbox schedules at most one run at a time (it only schedules when it moves from idle
// to running), so a buffer of one never blocks for long. The goroutine lives as long as the
// process: the lb exists once, and creates the loop once, across restarts.
type mailboxLoop struct {
	runs       chan func()
	throughput int
}

func newMailboxLoop(throughput int) *mailboxLoop {
	l := &mailboxLoop{runs: make(chan func(), 1), throughput: throughput}
	go l.loop()
	return l
}

func (l *mailboxLoop) loop() {
	for run := range l.runs {
		run() // protoactor's mailbox recovers panics of Receive itself
	}
}

// Schedule implements actor.Dispatcher.
func (l *mailboxLoop) Schedule(run func()) { l.runs <- run }

// Throughput implements actor.Dispatcher: messages handled before the loop yields.
func (l *mailboxLoop) Throughput() int { return l.throughput }
