package accesslog

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/messages"
)

// Config configures the Writer.
type Config struct {
	// Path is the file's path ("-" for stdout, which is never reopened); File is the file,
	// opened by the caller so that a bad path fails at start-up (Open).
	Path string
	File *os.File
	// Free is the free list of batch buffers shared with the event loops (may be nil).
	Free chan []byte
	// QueueBatches is how many batches may wait for the file goroutine before new ones are
	// dropped. Zero means 64 (4 MiB of lines).
	QueueBatches int
	// Done, when set, is closed once the file goroutine has written everything queued and
	// closed the file, after the actor stopped.
	Done chan struct{}
	// Logger gets write and reopen failures. Nil discards.
	Logger *slog.Logger
}

// Open opens path for appending, creating it (mode 0640) if needed; "-" is stdout.
func Open(path string) (*os.File, error) {
	if path == "-" {
		return os.Stdout, nil
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
}

// shared is what outlives a restart of the actor: the file goroutine's queue.
type shared struct {
	work    chan any
	file    *os.File // the file for the first goroutine
	started bool
	closed  bool
}

// Writer is the actor; its fields are owned by Receive.
type Writer struct {
	cfg   *Config
	sh    *shared
	log   *slog.Logger
	stats messages.AccessLogStats
	// reopen is a reopen asked for while the queue was full, sent once there is room.
	reopen bool
}

// Props returns the Writer's props.
func Props(cfg *Config) *actor.Props {
	n := cfg.QueueBatches
	if n <= 0 {
		n = 64
	}
	sh := &shared{work: make(chan any, n), file: cfg.File}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return actor.PropsFromProducer(func() actor.Actor {
		return &Writer{cfg: cfg, sh: sh, log: log.With("actor", "accesslog")}
	})
}

type reopenCmd struct{}

// Receive implements actor.Actor.
func (w *Writer) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if !w.sh.started && !w.sh.closed {
			w.sh.started = true
			f := fileWriter{path: w.cfg.Path, file: w.sh.file, free: w.cfg.Free, done: w.cfg.Done,
				root: ctx.ActorSystem().Root, self: ctx.Self()}
			w.sh.file = nil // the goroutine's now; after a crash the next one opens the path
			go f.run(w.sh.work)
		}
	case *actor.Stopping:
		if !w.sh.closed {
			w.sh.closed = true
			close(w.sh.work)
		}
	case *messages.AccessLogBatch:
		w.handleBatch(m)
	case *messages.ReopenAccessLog:
		w.reopen = true
		w.sendReopen()
	case *messages.AccessLogWritten:
		if m.Err != "" {
			w.stats.Errors++
			w.stats.Dropped += uint64(m.Lines)
			w.log.Error("cannot write the access log", "path", w.cfg.Path, "err", m.Err, "lines_lost", m.Lines)
		} else {
			w.stats.Lines += uint64(m.Lines)
			w.stats.Bytes += uint64(m.Bytes)
		}
		w.sendReopen()
	case *messages.AccessLogReopened:
		if m.Err != "" {
			w.stats.Errors++
			w.log.Error("cannot reopen the access log; still writing to the old file", "path", w.cfg.Path, "err", m.Err)
		} else {
			w.stats.Reopens++
			w.log.Info("access log reopened", "path", w.cfg.Path)
		}
	case *messages.PanicReport:
		w.sh.started = false // the goroutine is gone; the restart starts another
		panic(fmt.Sprintf("accesslog: file goroutine panicked: %v\n%s", m.Value, m.Stack))
	case *messages.StatsRequest:
		s := w.stats
		ctx.Send(m.ReplyTo, &s)
	}
}

// handleBatch queues a batch for the file goroutine, or drops it when the goroutine is that far
// behind (or gone).
func (w *Writer) handleBatch(m *messages.AccessLogBatch) {
	// A reopen asked for earlier goes first: a batch sent after it belongs in the new file.
	// If the queue has no room for the reopen, it has none for the batch either.
	w.sendReopen()
	if !w.sh.closed && !w.reopen {
		select {
		case w.sh.work <- m:
			return
		default:
		}
	}
	w.stats.Dropped += uint64(m.Lines)
	giveBack(w.cfg.Free, m.Buf)
}

func (w *Writer) sendReopen() {
	if !w.reopen || w.sh.closed {
		return
	}
	select {
	case w.sh.work <- reopenCmd{}:
		w.reopen = false
	default: // the queue is full: sent after the next batch is written
	}
}

// giveBack returns a batch buffer to the free list, if it has room.
func giveBack(free chan []byte, b []byte) {
	if free == nil || cap(b) == 0 {
		return
	}
	select {
	case free <- b[:0]:
	default:
	}
}

// fileWriter is the file goroutine: it owns the file, writes batches in order and reopens the
// file when told, and reports each to the actor by message.
type fileWriter struct {
	path string
	file *os.File
	free chan []byte
	done chan struct{}
	root *actor.RootContext
	self *actor.PID
}

func (f fileWriter) run(work <-chan any) {
	defer func() {
		if f.file != nil && f.file != os.Stdout {
			_ = f.file.Close()
		}
		if v := recover(); v != nil {
			f.root.Send(f.self, &messages.PanicReport{Value: v, Stack: debug.Stack()})
			return
		}
		if f.done != nil {
			close(f.done)
		}
	}()
	if f.file == nil {
		var err error
		if f.file, err = Open(f.path); err != nil {
			f.root.Send(f.self, &messages.AccessLogReopened{Err: err.Error()})
		}
	}
	for item := range work {
		switch it := item.(type) {
		case *messages.AccessLogBatch:
			if f.file == nil {
				f.root.Send(f.self, &messages.AccessLogWritten{Lines: it.Lines, Err: "no file open"})
				giveBack(f.free, it.Buf)
				continue
			}
			n, err := f.file.Write(it.Buf)
			r := &messages.AccessLogWritten{Lines: it.Lines, Bytes: n}
			if err != nil {
				r.Err = err.Error()
			}
			f.root.Send(f.self, r)
			giveBack(f.free, it.Buf)
		case reopenCmd:
			f.root.Send(f.self, &messages.AccessLogReopened{Err: f.reopen()})
		}
	}
}

// reopen closes the file and opens its path again; on failure the old file stays.
func (f *fileWriter) reopen() string {
	if f.file == os.Stdout {
		return ""
	}
	nf, err := Open(f.path)
	if err != nil {
		return err.Error()
	}
	if f.file != nil {
		_ = f.file.Close()
	}
	f.file = nf
	return ""
}
