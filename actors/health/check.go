package health

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/loadbalancer/loadbalancer/messages"
)

// Kind names a kind of health check.
type Kind uint8

// The kinds of health check. The zero Kind is the classic check.
const (
	// KindClassic sends the contract's GET /healthcheck and reads the backend's counters
	// from the answer (see Classic).
	KindClassic Kind = iota
	// KindHTTP sends a configurable GET or HEAD and judges the status and, optionally, the
	// body (see Check).
	KindHTTP
	// KindTCP passes when a connection is established within the probe's timeout.
	KindTCP
	// KindNone probes nothing: every backend is reported up, at start-up and after each
	// change of the backend table.
	KindNone
)

var kindNames = [...]string{KindClassic: "classic", KindHTTP: "http", KindTCP: "tcp", KindNone: "none"}

// String returns the kind's name as ParseKind accepts it.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// ParseKind returns the Kind named s: "classic", "http", "tcp" or "none" (lowercase).
func ParseKind(s string) (Kind, error) {
	for k, name := range kindNames {
		if s == name {
			return Kind(k), nil
		}
	}
	return 0, fmt.Errorf("health: unknown check kind %q (want classic, http, tcp or none)", s)
}

// Check says how a backend is probed. The zero value is the classic check; the other fields
// apply to the http check only, and must be left zero for the other kinds.
type Check struct {
	// Kind is the kind of check. Zero means classic.
	Kind Kind
	// Path is the http check's request path, query included. It must start with '/' and hold
	// no space, control or non-ASCII character (percent-encode). Empty means "/".
	Path string
	// Method is the http check's request method: "GET" or "HEAD" (uppercase). Empty means
	// GET.
	Method string
	// Status is the set of status codes that pass the http check. Nil (or empty) means
	// DefaultStatus, 200-399. Build it with ParseStatusSet.
	Status StatusSet
	// Body, when not empty, must occur in the first MaxCheckBody bytes of the http check's
	// response body for the check to pass. It needs Method GET (a response to HEAD has no
	// body). Empty means the body is not read.
	Body string
	// Host is the Host header of the http check's request. Empty means the backend's address
	// as configured ("host:port"). It must hold no space, control or non-ASCII character.
	Host string
}

func (c *Check) path() string {
	if c.Path == "" {
		return "/"
	}
	return c.Path
}

func (c *Check) method() string {
	if c.Method == "" {
		return "GET"
	}
	return c.Method
}

func (c *Check) status() StatusSet {
	if len(c.Status) == 0 {
		return DefaultStatus
	}
	return c.Status
}

// validate reports every problem with the check.
func (c *Check) validate() []error {
	var errs []error
	if int(c.Kind) >= len(kindNames) {
		errs = append(errs, fmt.Errorf("health: unknown check kind %v", c.Kind))
	}
	if c.Kind != KindHTTP {
		if set := c.httpFieldsSet(); len(set) > 0 {
			errs = append(errs, fmt.Errorf("health: check %s set for the %v check; they apply to the http check only", strings.Join(set, ", "), c.Kind))
		}
		return errs
	}
	if c.Path != "" {
		if c.Path[0] != '/' {
			errs = append(errs, fmt.Errorf("health: check path %q must start with '/'", c.Path))
		}
		if i := strings.IndexFunc(c.Path, notToken); i >= 0 {
			errs = append(errs, fmt.Errorf("health: check path %q has a space, control or non-ASCII character at %d", c.Path, i))
		}
	}
	switch c.Method {
	case "", "GET", "HEAD":
	default:
		errs = append(errs, fmt.Errorf("health: check method %q must be GET or HEAD", c.Method))
	}
	errs = append(errs, c.Status.validate()...)
	if c.Body != "" {
		if c.Method == "HEAD" {
			errs = append(errs, errors.New("health: check body needs method GET: a response to HEAD has no body"))
		}
		if len(c.Body) > MaxCheckBody {
			errs = append(errs, fmt.Errorf("health: check body is %d bytes, longer than the %d bytes of body read", len(c.Body), MaxCheckBody))
		}
	}
	if i := strings.IndexFunc(c.Host, notToken); i >= 0 {
		errs = append(errs, fmt.Errorf("health: check host %q has a space, control or non-ASCII character at %d", c.Host, i))
	}
	return errs
}

// httpFieldsSet names the fields of the http check that are not zero.
func (c *Check) httpFieldsSet() []string {
	var set []string
	add := func(name string, isSet bool) {
		if isSet {
			set = append(set, name)
		}
	}
	add("path", c.Path != "")
	add("method", c.Method != "")
	add("status", len(c.Status) > 0)
	add("body", c.Body != "")
	add("host", c.Host != "")
	return set
}

// notToken reports whether r may not appear in a request line or header value the monitor
// writes: a space, a control character, or anything outside ASCII.
func notToken(r rune) bool { return r <= ' ' || r >= 0x7f }

// Checker is one kind of health check for one backend. It is built once, before the monitor
// starts, and shared read-only by that backend's probe goroutines, so Check must be safe to call
// concurrently.
type Checker interface {
	// Check judges the backend over conn, a fresh connection to it, whose deadline the prober
	// has set (and which it interrupts when the round is abandoned, and closes afterwards).
	// It returns what a passed check learned, or an error saying why the backend fails it.
	// Errors of conn itself come back wrapped, so errors.As finds the net.Error.
	Check(conn net.Conn) (Result, error)
}

// Result is what a passed check learned about its backend.
type Result struct {
	// Counted is true when Counters are the backend's own (the classic check).
	Counted  bool
	Counters Counters
}

// checker returns the Checker for the backend at addr, or nil for KindNone.
func (c *Check) checker(addr string) Checker {
	switch c.Kind {
	case KindHTTP:
		return newHTTPCheck(c, addr)
	case KindTCP:
		return tcpCheck{}
	case KindNone:
		return nil
	}
	return newClassicCheck(addr)
}

// For returns the check for a backend with override o (a backend's own http check settings,
// in the syntax of the --health-* flags): c with every field o sets replaced. An override
// applies to the http check only.
func (c Check) For(o messages.HealthOverride) (Check, error) {
	if o == (messages.HealthOverride{}) {
		return c, nil
	}
	if c.Kind != KindHTTP {
		return c, fmt.Errorf("health: a backend's own check settings apply to the http check only, not %v", c.Kind)
	}
	if o.Path != "" {
		c.Path = o.Path
	}
	if o.Method != "" {
		c.Method = o.Method
	}
	if o.Status != "" {
		s, err := ParseStatusSet(o.Status)
		if err != nil {
			return c, err
		}
		c.Status = s
	}
	if o.Body != "" {
		c.Body = o.Body
	}
	if o.Host != "" {
		c.Host = o.Host
	}
	if errs := c.validate(); len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	return c, nil
}
