//go:build linux

package evloop

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// recorder is a Handler that reports what the loop hands it on a channel.
type recorder struct {
	l      *Loop
	events chan string
	timer  Timer
	armed  int64 // the loop's clock when the timer was armed, and when it fired
	fired  int64
}

func (r *recorder) Ready(fd int32, ev uint32) {
	if ev&In != 0 {
		var b [16]byte
		n, _ := unix.Read(int(fd), b[:])
		r.events <- "ready:" + string(b[:n])
	}
}
func (r *recorder) Expired() { r.fired = r.l.Now(); r.events <- "expired" }
func (r *recorder) Deliver(m any) {
	switch m := m.(type) {
	case string:
		if m == "panic" {
			panic("boom")
		}
		if m == "arm" {
			r.armed = r.l.Now()
			r.l.Arm(&r.timer, r, r.armed+int64(20*time.Millisecond))
		}
		r.events <- "msg:" + m
	}
}
func (r *recorder) Crashed(v any, stack []byte) {
	r.events <- "crashed:" + v.(string)
}

func newLoop(t *testing.T) *Loop {
	t.Helper()
	l, err := New(0)
	if err != nil {
		t.Fatal(err)
	}
	l.Start()
	t.Cleanup(l.Close)
	return l
}

func next(t *testing.T, r *recorder) string {
	t.Helper()
	select {
	case e := <-r.events:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("nothing from the loop within 5s")
		return ""
	}
}

// Posts from another goroutine wake a sleeping loop and arrive in order; a panic in a handler
// reaches its Crashed and the loop goes on.
func TestPostWakesAndPanicsAreContained(t *testing.T) {
	l := newLoop(t)
	r := &recorder{l: l, events: make(chan string, 16)}
	time.Sleep(10 * time.Millisecond) // let the loop fall asleep in epoll_wait
	l.Post(r, "a")
	l.Post(r, "b")
	l.Post(r, "panic")
	l.Post(r, "c")
	for _, want := range []string{"msg:a", "msg:b", "crashed:boom", "msg:c"} {
		if got := next(t, r); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

// A registered socket's input reaches its handler; a timer fires after its deadline.
func TestReadinessAndTimers(t *testing.T) {
	l := newLoop(t)
	r := &recorder{l: l, events: make(chan string, 16)}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	added := make(chan error, 1)
	l.Post(adder{l: l, fd: fds[0], h: r, done: added}, nil)
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(fds[1], []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if got := next(t, r); got != "ready:hi" {
		t.Fatalf("got %q, want ready:hi", got)
	}
	l.Post(r, "arm")
	if got := next(t, r); got != "msg:arm" {
		t.Fatalf("got %q", got)
	}
	if got := next(t, r); got != "expired" {
		t.Fatalf("got %q, want expired", got)
	}
	// Read after the channel receive: the loop wrote both before it sent "expired".
	if d := time.Duration(r.fired - r.armed); d < 20*time.Millisecond {
		t.Fatalf("timer fired %v after it was armed, before its 20ms", d)
	}
	l.Post(closer{l: l, fd: fds[0]}, nil)
}

// adder registers a socket from the loop's thread.
type adder struct {
	l    *Loop
	fd   int
	h    Handler
	done chan error
}

func (a adder) Ready(int32, uint32) {}
func (a adder) Expired()            {}
func (a adder) Deliver(any)         { a.done <- a.l.Add(a.fd, a.h) }
func (a adder) Crashed(any, []byte) {}

type closer struct {
	l  *Loop
	fd int
}

func (c closer) Ready(int32, uint32) {}
func (c closer) Expired()            {}
func (c closer) Deliver(any)         { c.l.CloseFd(c.fd) }
func (c closer) Crashed(any, []byte) {}

// The heap hands timers out in deadline order through pushes, moves and removals.
func TestTimerHeapOrder(t *testing.T) {
	var h timerHeap = timerHeap{nil}
	rng := rand.New(rand.NewPCG(1, 2))
	timers := make([]*Timer, 200)
	for i := range timers {
		timers[i] = &Timer{when: rng.Int64N(1000)}
		h.push(timers[i])
	}
	for i := 0; i < 100; i++ {
		tm := timers[rng.IntN(len(timers))]
		if tm.idx == 0 {
			continue
		}
		if i%3 == 0 {
			h.remove(tm)
			continue
		}
		tm.when = rng.Int64N(1000)
		h.fix(tm)
	}
	var got []int64
	for top := h.top(); top != nil; top = h.top() {
		got = append(got, top.when)
		h.remove(top)
	}
	if !slices.IsSorted(got) {
		t.Fatalf("timers came out of order: %v", got)
	}
	for _, tm := range timers {
		if tm.idx != 0 {
			t.Fatalf("a timer is still marked armed after the heap emptied")
		}
	}
}

// counter counts deliveries.
type counter struct{ n chan struct{} }

func (c counter) Ready(int32, uint32) {}
func (c counter) Expired()            {}
func (c counter) Deliver(any)         { c.n <- struct{}{} }
func (c counter) Crashed(any, []byte) {}

// Posts racing with the loop falling asleep and waking are never lost and never stall it (the
// token protocol of Post and sleep).
func TestPostsRacingSleepAreAllDelivered(t *testing.T) {
	l := newLoop(t)
	const posters, each = 4, 2000
	c := counter{n: make(chan struct{}, posters*each)}
	for p := 0; p < posters; p++ {
		go func() {
			for i := 0; i < each; i++ {
				l.Post(c, nil)
				if i%100 == 0 {
					time.Sleep(time.Duration(i%7) * 50 * time.Microsecond)
				}
			}
		}()
	}
	deadline := time.After(10 * time.Second)
	for got := 0; got < posters*each; got++ {
		select {
		case <-c.n:
		case <-deadline:
			t.Fatalf("got %d of %d deliveries", got, posters*each)
		}
	}
}
