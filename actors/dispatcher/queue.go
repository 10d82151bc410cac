package dispatcher

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// waiter is a pick waiting for a free slot. It is live while its holder waits with the same
// seq (holder.waitSeq): an entry served or given up out of order stays in the queue, dead, until
// it reaches the head.
type waiter struct {
	holder   *holder
	seq      uint64
	replyTo  *actor.PID
	deadline time.Time
}

// live reports whether w still stands for its holder's pick.
func (w *waiter) live() bool { return w.holder.waiting && w.holder.waitSeq == w.seq }

// waitQueue is a FIFO of waiters; its storage is reused, so a steady backlog allocates nothing.
type waitQueue struct {
	items []waiter
	first int
}

func (q *waitQueue) len() int { return len(q.items) - q.first }

func (q *waitQueue) push(w waiter) {
	if q.first > 0 && q.first == len(q.items) {
		q.items, q.first = q.items[:0], 0
	} else if q.first > 1024 && q.first*2 > len(q.items) {
		n := copy(q.items, q.items[q.first:])
		clear(q.items[n:])
		q.items, q.first = q.items[:n], 0
	}
	q.items = append(q.items, w)
}

func (q *waitQueue) head() *waiter { return &q.items[q.first] }

// at returns the i-th waiter from the head (0 <= i < len).
func (q *waitQueue) at(i int) *waiter { return &q.items[q.first+i] }

// dropDeadHead pops the dead waiters at the head.
func (q *waitQueue) dropDeadHead() {
	for q.len() > 0 && !q.head().live() {
		q.pop()
	}
}

func (q *waitQueue) pop() waiter {
	w := q.items[q.first]
	q.items[q.first] = waiter{}
	q.first++
	return w
}

// compact drops every dead waiter, keeping the order of the live ones.
func (q *waitQueue) compact() {
	j := 0
	for i := q.first; i < len(q.items); i++ {
		if q.items[i].live() {
			q.items[j] = q.items[i]
			j++
		}
	}
	clear(q.items[j:])
	q.items, q.first = q.items[:j], 0
}
