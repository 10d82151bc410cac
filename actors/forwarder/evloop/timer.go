package evloop

// Timer is a handler's deadline on its loop. A handler keeps one and moves it (Loop.Arm); when
// it passes, the loop calls the handler's Expired. The zero Timer is unarmed.
type Timer struct {
	when int64 // the loop's clock (Loop.Now); meaningful while idx >= 1
	idx  int   // 1-based position in the loop's heap; 0 when not armed
	h    Handler
}

// Armed reports whether t is set.
func (t *Timer) Armed() bool { return t.idx > 0 }

// timerHeap is a binary min-heap of timers by deadline, 1-based (heap[0] unused).
type timerHeap []*Timer

func (h *timerHeap) push(t *Timer) {
	*h = append(*h, t)
	t.idx = len(*h) - 1
	h.up(t.idx)
}

func (h *timerHeap) remove(t *Timer) {
	i, last := t.idx, len(*h)-1
	if i != last {
		h.swap(i, last)
	}
	(*h)[last] = nil
	*h = (*h)[:last]
	t.idx = 0
	if i != last {
		h.down(i)
		h.up(i)
	}
}

// fix restores the heap after t.when changed.
func (h *timerHeap) fix(t *Timer) {
	h.down(t.idx)
	h.up(t.idx)
}

func (h timerHeap) top() *Timer {
	if len(h) < 2 {
		return nil
	}
	return h[1]
}

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}

func (h timerHeap) up(i int) {
	for i > 1 {
		p := i / 2
		if h[p].when <= h[i].when {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h timerHeap) down(i int) {
	n := len(h) - 1
	for {
		l := 2 * i
		if l > n {
			return
		}
		m := l
		if r := l + 1; r <= n && h[r].when < h[l].when {
			m = r
		}
		if h[i].when <= h[m].when {
			return
		}
		h.swap(i, m)
		i = m
	}
}
