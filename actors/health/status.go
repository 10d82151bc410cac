package health

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// StatusRange is the HTTP status codes Low through High, both included.
type StatusRange struct {
	Low, High int
}

// StatusSet is a set of HTTP status codes, as a list of ranges in the order they were given
// (they may overlap). A nil or empty set in Check.Status means DefaultStatus.
type StatusSet []StatusRange

// DefaultStatus is the http check's status set when none is configured: 200-399, the
// successes and the redirects.
var DefaultStatus = StatusSet{{Low: 200, High: 399}}

// The status codes a StatusSet may hold.
const (
	minStatus = 100
	maxStatus = 599
)

// ParseStatusSet parses a comma-separated list of status codes and ranges of them, such as
// "200-399", "200,204" or "200-299,404". Codes are three digits from 100 to 599; a range's low
// end must not be above its high end; spaces around items are allowed. The empty string, an
// empty item and anything else are errors naming the problem.
func ParseStatusSet(s string) (StatusSet, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("health: status set %q is empty", s)
	}
	var set StatusSet
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		r, err := parseStatusRange(item)
		if err != nil {
			return nil, fmt.Errorf("health: status set %q: %v", s, err)
		}
		set = append(set, r)
	}
	return set, nil
}

// parseStatusRange parses one item of a status set: "404" or "200-299".
func parseStatusRange(item string) (StatusRange, error) {
	if item == "" {
		return StatusRange{}, errors.New("empty item")
	}
	lo, hi, isRange := strings.Cut(item, "-")
	if !isRange {
		code, err := parseStatus(item)
		if err != nil {
			return StatusRange{}, err
		}
		return StatusRange{Low: code, High: code}, nil
	}
	lo, hi = strings.TrimSpace(lo), strings.TrimSpace(hi)
	if strings.Contains(hi, "-") {
		return StatusRange{}, fmt.Errorf("range %q has more than one '-'", item)
	}
	if lo == "" || hi == "" {
		return StatusRange{}, fmt.Errorf("range %q lacks an end", item)
	}
	low, err := parseStatus(lo)
	if err != nil {
		return StatusRange{}, err
	}
	high, err := parseStatus(hi)
	if err != nil {
		return StatusRange{}, err
	}
	r := StatusRange{Low: low, High: high}
	if err := r.check(); err != nil {
		return StatusRange{}, err
	}
	return r, nil
}

// parseStatus parses a status code: three decimal digits, 100 to 599.
func parseStatus(s string) (int, error) {
	if len(s) != 3 || strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, fmt.Errorf("%q is not a status code (three digits, 100-599)", s)
	}
	code, _ := strconv.Atoi(s)
	if code < minStatus || code > maxStatus {
		return 0, fmt.Errorf("status code %d is outside 100-599", code)
	}
	return code, nil
}

// check reports what is wrong with r, if anything.
func (r StatusRange) check() error {
	if r.Low < minStatus || r.Low > maxStatus || r.High < minStatus || r.High > maxStatus {
		return fmt.Errorf("range %v is outside 100-599", r)
	}
	if r.Low > r.High {
		return fmt.Errorf("range %v runs backwards (low end above high end)", r)
	}
	return nil
}

// validate reports every problem with a set built by hand rather than by ParseStatusSet.
func (s StatusSet) validate() []error {
	var errs []error
	for _, r := range s {
		if err := r.check(); err != nil {
			errs = append(errs, fmt.Errorf("health: check status: %v", err))
		}
	}
	return errs
}

// Contains reports whether code is in the set.
func (s StatusSet) Contains(code int) bool {
	for _, r := range s {
		if r.Low <= code && code <= r.High {
			return true
		}
	}
	return false
}

// String prints the range as ParseStatusSet accepts it: "404" or "200-299".
func (r StatusRange) String() string {
	if r.Low == r.High {
		return strconv.Itoa(r.Low)
	}
	return strconv.Itoa(r.Low) + "-" + strconv.Itoa(r.High)
}

// String prints the set as ParseStatusSet accepts it, for example "200-299,404"; the empty set
// prints as "".
func (s StatusSet) String() string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(r.String())
	}
	return b.String()
}
