package wire

import "errors"

// ErrIncomplete is returned by the Parse methods when the bytes end before the head does:
// call again once more bytes are in.
var ErrIncomplete = errors.New("wire: head incomplete")

// HeadScan is where a Parse that found the head incomplete stopped looking for its end, so that
// a head that trickles in a few bytes at a time is scanned once, not once per arrival. The zero
// value starts at the beginning; Reset it before a new head.
type HeadScan struct {
	scan    int
	firstLF int
	started bool
}

// Reset makes s ready for a new head.
func (s *HeadScan) Reset() { *s = HeadScan{} }

// Parse parses the request head at the start of b into h, for callers that do their own reads
// (the event loop). It accepts and refuses exactly what Read does for the same bytes. It
// returns the number of bytes the head took (empty lines skipped before it included), with
// h filled in; or ErrIncomplete when b ends inside the head (call again with b and more bytes
// after it, and the same sc); or an *Error, as Read returns it. h copies the head out of b: b
// may change once Parse returns.
func (h *RequestHead) Parse(b []byte, lim Limits, sc *HeadScan) (int, error) {
	off := 0
	for n := 0; ; n++ {
		if len(b)-off < 2 {
			if len(b)-off == 1 && b[off] == '\r' || len(b) == off {
				return 0, ErrIncomplete
			}
			break
		}
		if b[off] != '\r' || b[off+1] != '\n' {
			break
		}
		if n == maxEmptyLines {
			h.reset()
			return 0, requestError(rEmptyLines)
		}
		off += 2
	}
	end, r := scanFor(b[off:], lim, sc)
	if r == rNone && end < 0 {
		return 0, ErrIncomplete
	}
	h.reset()
	if r == rNone {
		h.Raw = append(h.Raw, b[off:off+end]...)
		r = h.parse(lim.maxHeaders())
	}
	sc.Reset()
	if r != rNone {
		return 0, requestError(r)
	}
	return off + end, nil
}

// Parse parses the response head at the start of b into h, as RequestHead.Parse does for
// requests, with Read's rules for responses.
func (h *ResponseHead) Parse(b []byte, lim Limits, sc *HeadScan) (int, error) {
	end, r := scanFor(b, lim, sc)
	if r == rNone && end < 0 {
		return 0, ErrIncomplete
	}
	h.reset()
	if r == rNone {
		h.Raw = append(h.Raw, b[:end]...)
		r = h.parse(lim.maxHeaders())
	}
	sc.Reset()
	if r != rNone {
		return 0, responseError(r)
	}
	return end, nil
}

// scanFor finds the end of the head at the start of b with readHead's limits: the offset past
// its empty line, or -1 while it may still come.
func scanFor(b []byte, lim Limits, sc *HeadScan) (int, reason) {
	maxLine, maxHead := lim.maxRequestLine(), lim.maxHeaderBytes()
	if !sc.started {
		sc.started, sc.scan, sc.firstLF = true, 0, -1
	}
	win := b
	if len(win) > maxHead+1 {
		win = win[:maxHead+1]
	}
	end, next, r := scanHead(win, min(sc.scan, len(win)), &sc.firstLF, maxLine)
	sc.scan = next
	switch {
	case r != rNone:
		return -1, r
	case end > maxHead:
		return -1, rHeadTooLarge
	case end >= 0:
		return end, rNone
	case sc.firstLF < 0 && len(win) > maxLine+1:
		return -1, rRequestLineTooLong
	case len(win) > maxHead:
		return -1, rHeadTooLarge
	}
	return -1, rNone
}
