package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/loadbalancer/loadbalancer/actors/health"
	"github.com/loadbalancer/loadbalancer/messages"
)

// The config file (--config FILE) is YAML: one mapping whose keys are listen, backends and the
// long flags, each flag's name with '-' replaced by '_' (health_interval, max_per_backend). A
// flag's value is a single scalar, applied through the flag's own pflag.Value, exactly as if it
// had been given on the command line; a flag that is given on the command line wins, and the
// file's value is then only checked for syntax. Everything then goes through parseArgs's
// validation, and the problems found in values from the file are reported at their line and
// column.

// Keys of a backend, and of a backend's health mapping, in the order the errors list them.
var (
	backendKeys = []string{"address", "weight", "max_in_flight", "backup", "health"}
	healthKeys  = []string{"path", "method", "status", "body", "host"}
)

// configKey is a flag's key in the config file.
func configKey(flag string) string { return strings.ReplaceAll(flag, "-", "_") }

// position is a line and a column in the config file, both from 1; the zero position is the
// file as a whole.
type position struct{ line, col int }

func at(n *yaml.Node) position { return position{n.Line, n.Column} }

// problem is one thing wrong with the command line (file is empty) or the config file.
type problem struct {
	file string
	pos  position // in file; zero when the problem is the file's as a whole, or not known
	msg  string
}

func (p *problem) Error() string {
	switch {
	case p.file == "":
		return p.msg
	case p.pos.line == 0:
		return p.file + ": " + p.msg
	case p.pos.col == 0:
		return fmt.Sprintf("%s:%d: %s", p.file, p.pos.line, p.msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", p.file, p.pos.line, p.pos.col, p.msg)
}

// problems is every problem parseArgs found, one a line: first those in the config file, in
// the order of their positions, then the command line's.
type problems []*problem

func (ps problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives the problems one by one, as errors.Join's error does.
func (ps problems) Unwrap() []error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errs
}

// inFileOnly reports whether every problem is in the config file.
func (ps problems) inFileOnly() bool {
	for _, p := range ps {
		if p.file == "" {
			return false
		}
	}
	return true
}

// flagError is a problem with one flag's value. It reads "--flag" followed by msg on the
// command line, and "flag_key" followed by msg (or fileMsg, when set) when the value came from
// the config file, where it is reported at the value's position.
type flagError struct {
	flag         string // the long name
	msg, fileMsg string // what follows the name: " must be positive, got 0s", ": want GET or HEAD, got ..."
}

func (e *flagError) Error() string {
	switch e.flag {
	case "connections":
		return "-N" + e.msg
	case "requests":
		return "-R" + e.msg
	}
	return "--" + e.flag + e.msg
}

func flagErr(flag, format string, args ...any) error {
	return &flagError{flag: flag, msg: fmt.Sprintf(format, args...)}
}

// problems turns parseArgs's errors into problems, putting those about a flag whose value came
// from the config file at that value's position.
func (o *options) problems(errs []error) problems {
	var ps problems
	for _, err := range errs {
		var p *problem
		var fe *flagError
		switch {
		case errors.As(err, &p):
		case errors.As(err, &fe) && o.file != nil && o.file.hasPos(fe.flag):
			msg := fe.msg
			if fe.fileMsg != "" {
				msg = fe.fileMsg
			}
			p = o.file.problem(o.file.flagPos[fe.flag], "%s%s", configKey(fe.flag), msg)
		default:
			p = &problem{msg: err.Error()}
		}
		ps = append(ps, p)
	}
	slices.SortStableFunc(ps, func(a, b *problem) int {
		inA, inB := a.file != "", b.file != ""
		switch {
		case inA != inB: // the file's first
			if inA {
				return -1
			}
			return 1
		case !inA: // the command line's in the order found
			return 0
		case a.pos.line != b.pos.line:
			return cmp.Compare(a.pos.line, b.pos.line)
		}
		return cmp.Compare(a.pos.col, b.pos.col)
	})
	return ps
}

// configFile is what the config file holds beyond the flags (which it sets in the FlagSet), and
// where.
type configFile struct {
	path       string
	unreadable bool                // it could not be read or parsed: nothing is missing from it
	flagPos    map[string]position // flag name: where the file sets it (listen's host for bind)
	overridden []string            // the keys that the command line overrides
	listen     *listenAddr
	listenKey  bool // the file has a listen key, valid or not

	backendsKey  *position // where the backends key is, when there is one
	backendItems int       // how many items the backends list has, valid or not (-1: not a list)
	backends     []messages.Backend
	backendPos   []backendPos // with backends, item for item
}

// listenAddr is the file's listen: HOST:PORT.
type listenAddr struct {
	host string // "" for every interface
	port int
	pos  position
}

// backendPos is where a backend's keys' values are: "address", "health" (the key), "health.path".
type backendPos map[string]position

func (c *configFile) problem(pos position, format string, args ...any) *problem {
	return &problem{file: c.path, pos: pos, msg: fmt.Sprintf(format, args...)}
}

func (c *configFile) hasPos(flag string) bool { _, ok := c.flagPos[flag]; return ok }

// loadConfig reads the config file at path and applies its flag keys to fs, but for the flags
// given on the command line (cmdline). It returns every problem found in the file.
func loadConfig(fs *pflag.FlagSet, path string, cmdline map[string]bool) (*configFile, []error) {
	data, err := os.ReadFile(path)
	if err != nil {
		c := &configFile{path: path, unreadable: true, flagPos: map[string]position{}}
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return c, []error{c.problem(position{}, "cannot read the config file: %v", err)}
	}
	return parseConfig(fs, path, data, cmdline)
}

// yamlLine is how the YAML parser places its errors: by line only.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlParserProblems are the YAML parser's (not its scanner's) errors: yaml.v3 numbers their
// lines from 0, where the scanner's count from 1, and both leave the line out on line 1.
var yamlParserProblems = []string{"did not find expected", "found undefined tag handle",
	"found duplicate %YAML directive", "found incompatible YAML document", "found duplicate %TAG directive"}

// yamlUnplaced are the errors that have no line to be on.
var yamlUnplaced = []string{"unknown anchor", "anchor ", "document contains excessive aliasing", "expected "}

// syntaxProblem places a YAML syntax error at its line.
func (c *configFile) syntaxProblem(err error) *problem {
	msg, line := strings.TrimPrefix(err.Error(), "yaml: "), 1
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		msg = m[2]
		line, _ = strconv.Atoi(m[1])
		if hasPrefix(msg, yamlParserProblems) {
			line++
		}
	} else if hasPrefix(msg, yamlUnplaced) {
		line = 0
	}
	if msg == "did not find expected node content" || msg == "found character that cannot start any token" {
		msg += " (a value that starts with [, ], {, }, @ or ` needs quotes: \"[::1]:8080\")"
	}
	return c.problem(position{line: line}, "%s", msg)
}

func hasPrefix(s string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(s, p) })
}

// parseConfig is loadConfig on the file's contents.
func parseConfig(fs *pflag.FlagSet, path string, data []byte, cmdline map[string]bool) (*configFile, []error) {
	c := &configFile{path: path, flagPos: map[string]position{}}
	l := &loader{c: c, fs: fs, cmdline: cmdline}
	syntax := func(err error) []error {
		c.unreadable = true
		return []error{c.syntaxProblem(err)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF): // empty, or only comments
		return c, nil
	case err != nil:
		return c, syntax(err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		l.errAt(at(&next), "a second YAML document: the config file holds one")
	case !errors.Is(err, io.EOF):
		return c, syntax(err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = resolve(root.Content[0])
	}
	switch {
	case root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null":
	case root.Kind != yaml.MappingNode:
		c.unreadable = true
		l.errAt(at(root), "the config file is a mapping of KEY: VALUE (listen: 127.0.0.1:8080), not %s", kindName(root))
	default:
		l.top(root)
	}
	return c, l.errs
}

// loader walks the YAML tree, collecting every problem.
type loader struct {
	c       *configFile
	fs      *pflag.FlagSet
	cmdline map[string]bool
	errs    []error
}

func (l *loader) errAt(pos position, format string, args ...any) {
	l.errs = append(l.errs, l.c.problem(pos, format, args...))
}

// resolve follows an alias (*name) to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "an unexpected YAML node"
}

// mapping calls each for every KEY: VALUE of n (a mapping), reporting keys that are not words
// and keys given twice; where ("", "in a backend") says where n is, for the errors.
func (l *loader) mapping(n *yaml.Node, where string, each func(key string, k, v *yaml.Node)) {
	seen := map[string]position{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!null" {
			l.errAt(at(k), "a key is a word, not %s", kindName(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			l.errAt(at(k), "key %q%s given twice (first at line %d:%d)", k.Value, where, first.line, first.col)
			continue
		}
		seen[k.Value] = at(k)
		each(k.Value, k, v)
	}
}

// unknown reports an unknown key, with the nearest valid one when it is close.
func (l *loader) unknown(k *yaml.Node, where string, valid []string) {
	if k.Value == "<<" {
		l.errAt(at(k), "merge keys (<<) are not supported: write the keys out")
		return
	}
	msg := fmt.Sprintf("unknown key %q%s", k.Value, where)
	if s := suggest(k.Value, valid); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	l.errAt(at(k), "%s", msg)
}

// scalar is v's text, when v is a single value.
func (l *loader) scalar(key string, v *yaml.Node) (string, bool) {
	switch {
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null":
		l.errAt(at(v), "%s has no value (write \"\" for an empty one)", key)
	case v.Kind != yaml.ScalarNode:
		l.errAt(at(v), "%s takes a single value, not %s", key, kindName(v))
	default:
		return v.Value, true
	}
	return "", false
}

// topKeys are the keys of the config file's mapping.
func (l *loader) topKeys() []string {
	keys := []string{"listen", "backends"}
	l.fs.VisitAll(func(f *pflag.Flag) {
		if !cmdlineOnly[f.Name] {
			keys = append(keys, configKey(f.Name))
		}
	})
	return keys
}

// aliases suggest a key for a few names people reach for.
var aliases = map[string]string{"port": "listen", "address": "listen", "servers": "backends",
	"backend": "backends", "n": "connections", "r": "requests"}

// top reads the config file's mapping.
func (l *loader) top(n *yaml.Node) {
	l.mapping(n, "", func(key string, k, v *yaml.Node) {
		switch key {
		case "listen":
			l.listen(v)
			return
		case "backends":
			l.backends(k, v)
			return
		}
		name := strings.ReplaceAll(key, "_", "-")
		f := l.fs.Lookup(name)
		switch {
		case cmdlineOnly[name]:
			l.errAt(at(k), "%q is for the command line only (--%s)", key, name)
			return
		case f == nil || strings.Contains(key, "-"):
			if s, ok := aliases[strings.ToLower(key)]; ok {
				l.errAt(at(k), "unknown key %q (did you mean %q?)", key, s)
				return
			}
			if slices.Contains(backendKeys, key) {
				l.errAt(at(k), "unknown key %q at the top: it is a backend's key (under backends)", key)
				return
			}
			l.unknown(k, "", l.topKeys())
			return
		}
		text, ok := l.scalar(key, v)
		if !ok {
			return
		}
		if l.cmdline[name] {
			// The command line wins; the file's value must still be one the flag takes.
			old := f.Value.String()
			if err := f.Value.Set(text); err != nil {
				l.errAt(at(v), "%s: %q %v", key, text, err)
			}
			_ = f.Value.Set(old)
			l.c.overridden = append(l.c.overridden, key)
			return
		}
		if err := l.fs.Set(name, text); err != nil {
			var ive *pflag.InvalidValueError
			if errors.As(err, &ive) {
				err = ive.Unwrap()
			}
			l.errAt(at(v), "%s: %q %v", key, text, err)
			return
		}
		l.c.flagPos[name] = at(v)
	})
	if c := l.c; c.listen != nil && c.listen.host != "" && c.hasPos("bind") {
		l.errAt(c.flagPos["bind"], "bind: listen gives the address already (%s); give it once", c.listen.host)
		delete(c.flagPos, "bind")
	}
}

// listen reads listen: HOST:PORT, or :PORT for every interface.
func (l *loader) listen(v *yaml.Node) {
	l.c.listenKey = true
	text, ok := l.scalar("listen", v)
	if !ok {
		return
	}
	if strings.Contains(text, "/") {
		l.errAt(at(v), "listen: want HOST:PORT or :PORT, without a scheme (http://) or path, got %q", text)
		return
	}
	host, port, err := net.SplitHostPort(text)
	if err != nil {
		if _, perr := parsePort(text); perr == nil {
			l.errAt(at(v), "listen: want HOST:PORT or :PORT, got %q (did you mean \":%s\"?)", text, text)
		} else {
			l.errAt(at(v), "listen: want HOST:PORT or :PORT (127.0.0.1:8080, [::1]:8080, :8080), got %q", text)
		}
		return
	}
	p, err := parsePort(port)
	if err != nil {
		l.errAt(at(v), "listen: %v", err)
		return
	}
	l.c.listen = &listenAddr{host: host, port: p, pos: at(v)}
}

// backends reads the backends list.
func (l *loader) backends(k, v *yaml.Node) {
	pos := at(k)
	l.c.backendsKey = &pos
	switch {
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null": // "backends:" and nothing: none
		return
	case v.Kind != yaml.SequenceNode:
		l.c.backendItems = -1
		l.errAt(at(v), "backends is a list (- address: HOST:PORT), not %s", kindName(v))
		return
	}
	seen := map[string]position{} // address: where
	for _, item := range v.Content {
		item = resolve(item)
		l.c.backendItems++
		if item.Kind != yaml.MappingNode {
			l.errAt(at(item), "a backend is a mapping (- address: HOST:PORT), not %s", kindName(item))
			continue
		}
		b, bp, ok := l.backend(item)
		if !ok {
			continue
		}
		if first, dup := seen[b.Addr]; dup {
			l.errAt(bp["address"], "backend %s listed twice (first at line %d:%d)", b.Addr, first.line, first.col)
			continue
		}
		seen[b.Addr] = bp["address"]
		l.c.backends = append(l.c.backends, b)
		l.c.backendPos = append(l.c.backendPos, bp)
	}
}

// backend reads one item of the backends list; ok is false when it has a problem.
func (l *loader) backend(item *yaml.Node) (b messages.Backend, bp backendPos, ok bool) {
	b, bp, ok = messages.Backend{Weight: 1}, backendPos{}, true
	bad := func(pos position, format string, args ...any) {
		l.errAt(pos, format, args...)
		ok = false
	}
	l.mapping(item, " in a backend", func(key string, k, v *yaml.Node) {
		if key == "health" {
			bp["health"] = at(k)
			if !l.health(v, &b.Health, bp) {
				ok = false
			}
			return
		}
		if !slices.Contains(backendKeys, key) {
			l.unknown(k, " in a backend", backendKeys)
			ok = false
			return
		}
		text, isScalar := l.scalar(key, v)
		if !isScalar {
			ok = false
			return
		}
		bp[key] = at(v)
		switch key {
		case "address":
			addr, err := parseFileBackend(text)
			if err != nil {
				bad(at(v), "address %q: %v", text, err)
			}
			b.Addr = addr
		case "weight":
			w, err := strconv.Atoi(text)
			if err != nil || w < 1 || w > 1000 {
				bad(at(v), "weight: want a whole number from 1 to 1000, got %q", text)
			}
			b.Weight = w
		case "max_in_flight":
			m, err := strconv.Atoi(text)
			if err != nil || m < 0 {
				bad(at(v), "max_in_flight: want a whole number, 0 or more (0: max_per_backend's cap), got %q", text)
			}
			b.MaxInFlight = m
		case "backup":
			backup, err := strconv.ParseBool(text)
			if err != nil {
				bad(at(v), "backup: want true or false, got %q", text)
			}
			b.Backup = backup
		}
	})
	if _, has := bp["address"]; !has {
		bad(at(item), "a backend needs an address (address: HOST:PORT)")
	}
	return b, bp, ok
}

// parseFileBackend parses a backend's address: as a SERVER argument, but without @WEIGHT.
func parseFileBackend(s string) (string, error) {
	switch {
	case strings.Contains(s, "/"):
		return "", notHostPort(s)
	case strings.Contains(s, "@"):
		return "", errors.New("give the weight as weight: N, not @N")
	}
	return parseBackend(s)
}

// health reads a backend's health mapping: its own http check, checked as the --health-*
// flags are, whatever the check kind (checkOverrides checks that it is http).
func (l *loader) health(v *yaml.Node, h *messages.HealthOverride, bp backendPos) bool {
	if v.Kind != yaml.MappingNode {
		l.errAt(at(v), "health is a mapping of %s, not %s", strings.Join(healthKeys, ", "), kindName(v))
		return false
	}
	ok := true
	bad := func(pos position, format string, args ...any) {
		l.errAt(pos, format, args...)
		ok = false
	}
	l.mapping(v, " in a backend's health", func(key string, k, v *yaml.Node) {
		if !slices.Contains(healthKeys, key) {
			l.unknown(k, " in a backend's health", healthKeys)
			ok = false
			return
		}
		text, isScalar := l.scalar("health."+key, v)
		if !isScalar {
			ok = false
			return
		}
		bp["health."+key] = at(v)
		switch key {
		case "path":
			if !strings.HasPrefix(text, "/") {
				bad(at(v), "health.path must start with '/', got %q", text)
			} else if err := checkToken(text); err != nil {
				bad(at(v), "health.path %v", err)
			}
			h.Path = text
		case "method":
			h.Method = strings.ToUpper(text)
			if h.Method != "GET" && h.Method != "HEAD" {
				bad(at(v), "health.method: want GET or HEAD, got %q", text)
			}
		case "status":
			if _, err := health.ParseStatusSet(text); err != nil {
				bad(at(v), "health.status: %v", err)
			}
			h.Status = text
		case "body":
			if len(text) > health.MaxCheckBody {
				bad(at(v), "health.body is %d bytes, longer than the %d bytes of body read", len(text), health.MaxCheckBody)
			}
			h.Body = text
		case "host":
			if err := checkToken(text); err != nil {
				bad(at(v), "health.host %v", err)
			}
			h.Host = text
		}
	})
	return ok
}

// checkOverrides checks the backends' own http checks against the check kind and the global
// check: they apply to the http check only, and a body to match needs method GET.
func (o *options) checkOverrides() []error {
	if o.file == nil || !o.backendsFromFile {
		return nil
	}
	var errs []error
	for i, b := range o.backends {
		bp, h := o.file.backendPos[i], b.Health
		if h == (messages.HealthOverride{}) {
			continue
		}
		if o.check.Kind != health.KindHTTP {
			errs = append(errs, o.file.problem(bp["health"],
				"health: a backend's own health check settings apply to the http check only (health_check: http), and the check is %s", o.check.Kind))
			continue
		}
		method, body := cmp.Or(h.Method, o.check.Method, "GET"), cmp.Or(h.Body, o.check.Body)
		if method == "HEAD" && body != "" {
			pos, ok := bp["health.method"]
			if !ok {
				pos = bp["health.body"]
			}
			errs = append(errs, o.file.problem(pos, "health: a check body needs method GET (a response to HEAD has no body)"))
		}
	}
	return errs
}

// checkToken checks a health check path or Host header: no space, control or non-ASCII
// character, as the health checks require.
func checkToken(s string) error {
	if i := strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f }); i >= 0 {
		return fmt.Errorf("has a space, control or non-ASCII character at %d: %q", i, s)
	}
	return nil
}

// suggest is the valid key nearest to key, when it is near enough to be a typo.
func suggest(key string, valid []string) string {
	lower := strings.ToLower(strings.ReplaceAll(key, "-", "_"))
	best, bestD := "", max(2, len(key)/3)+1
	for _, v := range valid {
		if d := editDistance(lower, v); d < bestD {
			best, bestD = v, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
