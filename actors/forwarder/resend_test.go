package forwarder

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// resetting reads a request head and resets the connection without answering, as a backend
// killed with the request in flight does.
func resetting(c net.Conn) {
	_, _ = readHead(bufio.NewReader(c))
	_ = c.(*net.TCPConn).SetLinger(0)
}

// answerOnce answers one request with resp and closes, so no handler outlives the test.
func answerOnce(resp string) func(net.Conn) {
	return func(c net.Conn) {
		if _, err := readHead(bufio.NewReader(c)); err == nil {
			_, _ = io.WriteString(c, resp)
		}
	}
}

// silentBackend reads and never answers, as a frozen (SIGSTOPped) backend does.
func silentBackend(c net.Conn) { _, _ = io.Copy(io.Discard, c) }

func TestRequestResetBeforeAnswerGoesToAnotherBackend(t *testing.T) {
	r := newRig(t, Config{})
	dead, good := backend(t, resetting), backend(t, answerOnce(ok2))
	r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1, Backend: 0}, Addr: dead})
	p = r.expectPick(messages.Release{Lease: messages.Lease{ID: 1, Backend: 0}, Outcome: messages.OutcomeBackendFailed}, true)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 2, Backend: 1}, Addr: good})
	actortest.Equal(t, "response", r.readN(len(ok2)), ok2)
}

func TestPostResetBeforeAnswerIsNotSentAgain(t *testing.T) {
	r := newRig(t, Config{})
	dead := backend(t, resetting)
	r.send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: dead})
	actortest.Equal(t, "response", r.readN(len(classic500)), string(classic500))
	// The lease comes back with the failure, and no second pick: never sent twice.
	m := actortest.Expect[*messages.ReleaseLease](r.disp)
	actortest.Equal(t, "release outcome", m.Release.Outcome, messages.OutcomeBackendFailed)
	r.expectEnded() // the connection closed after the error (its body was never read)
	r.disp.ExpectNothing(100 * time.Millisecond)
}

func TestResendHappensOnce(t *testing.T) {
	// A request that every backend resets goes to two of them, then gets the error.
	r := newRig(t, Config{})
	dead := backend(t, resetting)
	r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: dead})
	p = r.expectPick(messages.Release{Lease: messages.Lease{ID: 1}, Outcome: messages.OutcomeBackendFailed}, true)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 2, Backend: 1}, Addr: dead})
	actortest.Equal(t, "response", r.readN(len(classic500)), string(classic500))
}

func TestOverdueAnswerIsCheckedAndAbandoned(t *testing.T) {
	r := newRig(t, Config{})
	frozen, good := backend(t, silentBackend), backend(t, answerOnce(ok2))
	r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	lease := messages.Lease{ID: 1, Backend: 0}
	r.answer(p, &messages.BackendPicked{Lease: lease, Addr: frozen, CheckAfter: 50 * time.Millisecond})
	chk := actortest.Expect[*messages.CheckLease](r.disp)
	actortest.Equal(t, "CheckLease.Lease", chk.Lease, lease)
	r.sys.Root.Send(chk.ReplyTo, &messages.LeaseVerdict{Abandon: true})
	p = r.expectPick(messages.Release{Lease: lease, Outcome: messages.OutcomeAbandoned}, true)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 2, Backend: 1}, Addr: good})
	actortest.Equal(t, "response", r.readN(len(ok2)), ok2)
}

func TestOverdueAnswerKeepsWaitingWhenTold(t *testing.T) {
	r := newRig(t, Config{})
	slow := backend(t, func(c net.Conn) {
		_, _ = readHead(bufio.NewReader(c))
		time.Sleep(300 * time.Millisecond)
		_, _ = io.WriteString(c, ok2)
	})
	r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: slow, CheckAfter: 50 * time.Millisecond})
	chk := actortest.Expect[*messages.CheckLease](r.disp)
	r.sys.Root.Send(chk.ReplyTo, &messages.LeaseVerdict{CheckAfter: 60 * time.Millisecond})
	chk = actortest.Expect[*messages.CheckLease](r.disp) // asked again after the new CheckAfter
	r.sys.Root.Send(chk.ReplyTo, &messages.LeaseVerdict{})
	actortest.Equal(t, "response", r.readN(len(ok2)), ok2)
}

func TestAbandonedPostKeepsWaiting(t *testing.T) {
	// A request that cannot be sent again waits for its answer even when told to abandon.
	r := newRig(t, Config{})
	slow := backend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		_, _ = readHead(br)
		_, _ = br.Discard(2)
		time.Sleep(200 * time.Millisecond)
		_, _ = io.WriteString(c, ok2)
	})
	r.send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: slow, CheckAfter: 50 * time.Millisecond})
	chk := actortest.Expect[*messages.CheckLease](r.disp)
	r.sys.Root.Send(chk.ReplyTo, &messages.LeaseVerdict{Abandon: true})
	actortest.Equal(t, "response", r.readN(len(ok2)), ok2)
}

func TestHashKeyTravelsWithThePick(t *testing.T) {
	for _, tt := range []struct {
		name    string
		key     HashKey
		req     string
		want    []byte // hashed; nil: no key
		wantKey bool
	}{
		// The configured header's value is the key.
		{"header", HashKey{Source: HashHeader, Name: "X-User"}, "GET / HTTP/1.1\r\nHost: x\r\nx-user: alice\r\n\r\n", []byte("alice"), true},
		// A request without the header has no key.
		{"header missing", HashKey{Source: HashHeader, Name: "X-User"}, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", nil, false},
		// The named cookie among others.
		{"cookie", HashKey{Source: HashCookie, Name: "sid"}, "GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1; sid=s3cr3t; b=2\r\n\r\n", []byte("s3cr3t"), true},
		// A cookie whose name only starts with the wanted one does not count.
		{"cookie prefix", HashKey{Source: HashCookie, Name: "sid"}, "GET / HTTP/1.1\r\nHost: x\r\nCookie: sidx=1\r\n\r\n", nil, false},
		// The client's address.
		{"client", HashKey{Source: HashClient}, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", []byte("127.0.0.1"), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, Config{Hash: tt.key})
			r.send(tt.req)
			m := actortest.Expect[*messages.PickBackend](r.disp)
			actortest.Equal(t, "HasKey", m.HasKey, tt.wantKey)
			if tt.wantKey {
				actortest.Equal(t, "Key", m.Key, fnv1a(tt.want))
			}
		})
	}
}

func TestParseHashKey(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want HashKey
		ok   bool
	}{
		{"client", HashKey{Source: HashClient}, true},
		{"header:X-User", HashKey{Source: HashHeader, Name: "X-User"}, true},
		{"cookie:sid", HashKey{Source: HashCookie, Name: "sid"}, true},
		{"header:", HashKey{}, false},    // a header needs a name
		{"cookie:a b", HashKey{}, false}, // not a token
		{"client:x", HashKey{}, false},   // client takes no name
		{"uri", HashKey{}, false},        // unknown source
		{"header:a:b", HashKey{}, false}, // ':' is not in a token
	} {
		got, err := ParseHashKey(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseHashKey(%q): got %+v, %v; want %+v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if tt.ok && got.String() != tt.in {
			t.Errorf("String: got %q, want %q", got.String(), tt.in)
		}
	}
}

// A verdict that comes after the response deadline is about an exchange that is over: the client
// got the timeout's answer, and the late verdict changes nothing for the next request on the
// same connection (a verdict is taken only for the lease it was asked about).
func TestLateVerdictIsIgnored(t *testing.T) {
	r := newRig(t, Config{ResponseTimeout: 300 * time.Millisecond})
	frozen, good := backend(t, silentBackend), backend(t, answering(ok2))
	r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: frozen, CheckAfter: 50 * time.Millisecond})
	chk := actortest.Expect[*messages.CheckLease](r.disp) // and never answered in time
	actortest.Equal(t, "response", r.readN(len(classic500)), string(classic500))
	m := actortest.Expect[*messages.ReleaseLease](r.disp)
	actortest.Equal(t, "release outcome", m.Release.Outcome, messages.OutcomeTimeout)
	r.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	p = r.expectPick(messages.Release{}, false)
	r.sys.Root.Send(chk.ReplyTo, &messages.LeaseVerdict{Abandon: true}) // the late verdict
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 2}, Addr: good})
	actortest.Equal(t, "next response", r.readN(len(ok2)), ok2)
}
