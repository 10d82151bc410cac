// Command httpserver is the reference backend of the classic contract (see cmd/CONTRACT.md):
// it serves the files of its working directory over HTTP/1.1.
//
//	httpserver PORT [-N threads] [-l logfile] [-L] [-e errors] [-t entries] [--close] [--delay D] [flags]
//
// Flags may come before or after PORT. Requests are GET, PUT and HEAD on /name, where name is
// 1 to 27 characters of A-Z a-z 0-9 _ -. Every response carries exactly one header,
// Content-Length; errors have an empty body; a PUT is answered 201 Created with an empty body,
// also when the file existed.
//
// Behaviour beyond the contract's letter, all of it where the contract is silent:
//
//   - Connections are persistent (HTTP/1.1) and pipelined requests are answered in order. A
//     request with "Connection: close", or any request with --close, gets its response and
//     then the connection closes, without a Connection header in the response.
//   - A head over 8 KiB, a malformed request line or header, an invalid Content-Length,
//     Transfer-Encoding, or a version other than HTTP/1.1 get 400 and the connection closes.
//     An unknown method or an invalid name get 400 and the connection goes on. A bare LF ends a
//     line as CRLF does. A PUT without Content-Length gets 400.
//   - A directory or other non-regular file under a valid name is 403; a symlink loop is 500.
//   - PUT writes a temporary file and renames it into place (see files.go); a body cut short
//     is logged as FAIL with 400 and the old file is kept.
//   - The log (see log.go) is written before the response goes out, so a client that has its
//     answer finds the entry in the file and in the health-check counters. The hex of a body
//     is read back from disk, never taken from the network: for GET from the very descriptor
//     that is then sent, for PUT from the completed upload once it is in place.
//   - --delay D (e.g. 10ms; default none) makes every answer but /healthcheck's wait D from
//     the end of its request head before it is processed and written: a slow backend for
//     benchmarks and tests. The wait is a sleep in the connection's goroutine that holds none of
//     the -N slots, so D adds latency, not load: a backend with --delay 10ms serves as many
//     requests at once as its clients send, each 10 ms late. Health checks are not delayed, so
//     a slow backend still counts as up. Earlier pipelined answers go out before the wait.
//   - SIGINT or SIGTERM: stop accepting, let requests being processed finish (up to 10 s; a
//     request sleeping out --delay counts as being processed), flush the log and exit 0.
package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

const usageLine = "usage: httpserver PORT [-N threads] [-l logfile] [-L] [-e errors] [-t entries] [--close] [--delay D] [flags]\n"

// shutdownGrace is how long requests being processed may take to finish after a signal.
const shutdownGrace = 10 * time.Second

var errHelp = errors.New("help requested")

// options is the parsed command line.
type options struct {
	// port is the TCP port to listen on, 1 to 65535.
	port int
	// bind is the address to listen on; "" means every interface.
	bind string
	// threads is -N: at most this many requests are processed at once (default 4).
	threads int
	// logFile is -l: the log file, truncated at start; "" for none.
	logFile string
	// countOnly is -L: counters and /healthcheck as with a log, but no file.
	countOnly bool
	// errors and entries are -e and -t: the counters' starting values.
	errors, entries int64
	// closeEach is --close: close the connection after every response.
	closeEach bool
	// timeout is how long a connection may stay idle or stall mid-request.
	timeout time.Duration
	// delay is --delay: how long every answer but /healthcheck's waits; zero for none.
	delay time.Duration
}

// logging reports whether requests are counted (and /healthcheck answered).
func (o *options) logging() bool { return o.logFile != "" || o.countOnly }

// parseArgs parses the command line; flags may appear anywhere among the positional
// arguments. On -h it prints the help to helpOut (the caller's stdout) and returns errHelp.
// Every problem is reported, not just the first.
func parseArgs(args []string, helpOut io.Writer) (*options, error) {
	o := &options{}
	fs := pflag.NewFlagSet("httpserver", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	fs.SetInterspersed(true)
	fs.IntVarP(&o.threads, "threads", "N", 4, "at most this many requests are processed at once; more wait (idle connections do not count)")
	fs.StringVarP(&o.logFile, "log", "l", "", "write the request log to this file, truncated at start (default: no log)")
	fs.BoolVarP(&o.countOnly, "count", "L", false, "count requests and answer /healthcheck as with a log, without writing one")
	fs.Int64VarP(&o.errors, "errors", "e", 0, "start the error counter at this value")
	fs.Int64VarP(&o.entries, "entries", "t", 0, "start the entry counter at this value")
	fs.BoolVar(&o.closeEach, "close", false, "close the connection after every response, like the classic server (default: keep alive)")
	fs.StringVar(&o.bind, "bind", "", "address to listen on (default: all interfaces)")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "how long a connection may stay idle, or a request or body stall, before it is closed")
	fs.DurationVar(&o.delay, "delay", 0, "wait this long (e.g. 10ms) before answering each request but /healthcheck, holding no -N slot meanwhile (default: no wait)")
	help := fs.BoolP("help", "h", false, "print this help")

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if *help {
		fmt.Fprint(helpOut, usageLine, "\nServes the files of the working directory on PORT.\n\nFlags:\n", fs.FlagUsages())
		return nil, errHelp
	}
	var errs []error
	switch pos := fs.Args(); len(pos) {
	case 0:
		errs = append(errs, errors.New("missing PORT"))
	case 1:
		p, err := strconv.Atoi(pos[0])
		if err != nil || p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("%q is not a port number (1-65535)", pos[0]))
		}
		o.port = p
	default:
		errs = append(errs, fmt.Errorf("want one PORT, got %q", pos))
	}
	if o.threads <= 0 {
		errs = append(errs, fmt.Errorf("-N must be a positive number, got %d", o.threads))
	}
	if o.errors < 0 {
		errs = append(errs, fmt.Errorf("-e must not be negative, got %d", o.errors))
	}
	if o.entries < 0 {
		errs = append(errs, fmt.Errorf("-t must not be negative, got %d", o.entries))
	}
	if fs.Changed("log") && o.logFile == "" {
		errs = append(errs, errors.New("-l needs a file name"))
	}
	if o.timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout must be positive, got %v", o.timeout))
	}
	if o.delay < 0 {
		errs = append(errs, fmt.Errorf("--delay must not be negative, got %v", o.delay))
	}
	return o, errors.Join(errs...)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program: it returns the exit status (2 for bad arguments, 1 when the
// server cannot start, 0 after --help or a signal). The help goes to stdout, everything else
// to stderr.
func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseArgs(args, stdout)
	switch {
	case errors.Is(err, errHelp):
		return 0
	case err != nil:
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "httpserver: %s\n", line)
		}
		fmt.Fprint(stderr, usageLine)
		fmt.Fprintln(stderr, "Run 'httpserver --help' for every flag.")
		return 2
	}

	var log *requestLog
	if opts.logging() {
		if log, err = openLog(opts.logFile, opts.errors, opts.entries, stderr); err != nil {
			fmt.Fprintf(stderr, "httpserver: %v\n", err)
			return 1
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(opts.bind, strconv.Itoa(opts.port)))
	if err != nil {
		fmt.Fprintf(stderr, "httpserver: cannot listen: %v\n", err)
		_ = log.close()
		return 1
	}
	srv := newServer(opts, log, stderr)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.serve(ln)
	}()

	<-sigs
	ln.Close()
	<-served
	drained := make(chan bool, 1)
	go func() { drained <- srv.drain(shutdownGrace) }()
	select {
	case ok := <-drained:
		if !ok {
			fmt.Fprintln(stderr, "httpserver: requests still running after the grace period; exiting")
		}
	case <-sigs:
		fmt.Fprintln(stderr, "httpserver: second signal; exiting now")
		return 1
	}
	if err := log.close(); err != nil {
		fmt.Fprintf(stderr, "httpserver: closing the log: %v\n", err)
		return 1
	}
	return 0
}

// newServer returns the server the options describe, logging to log (nil for none) and
// reporting accept errors to stderr.
func newServer(opts *options, log *requestLog, stderr io.Writer) *server {
	return &server{
		slots:       make(chan struct{}, opts.threads),
		log:         log,
		closeEach:   opts.closeEach,
		timeout:     opts.timeout,
		delay:       opts.delay,
		newFileMode: newFileMode(),
		stderr:      stderr,
	}
}

// newFileMode returns 0666 less the process umask, the mode open(2) would give a new file.
// It briefly sets the umask, so it runs once, before any file is created.
func newFileMode() fs.FileMode {
	mask := syscall.Umask(0)
	syscall.Umask(mask)
	return fs.FileMode(0o666 &^ mask)
}
