//go:build linux

package accesslog

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"golang.org/x/sys/unix"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// TestMain fails the run if a goroutine of this package (the file goroutine) outlives the tests.
func TestMain(m *testing.M) { os.Exit(actortest.RunCheckingLeaks(m, "/actors/accesslog.")) }

// writerRig is a Writer under test, with its free list and Done channel.
type writerRig struct {
	t       *testing.T
	sys     *actor.ActorSystem
	pid     *actor.PID
	free    chan []byte
	done    chan struct{}
	stopped bool
}

// spawnWriter spawns a Writer with cfg (Free and Done filled in when nil); it is stopped when the
// test ends, unless the test stopped it.
func spawnWriter(t *testing.T, cfg *Config) *writerRig {
	t.Helper()
	sys := actortest.NewSystem(t)
	if cfg.Free == nil {
		cfg.Free = make(chan []byte, 64)
	}
	if cfg.Done == nil {
		cfg.Done = make(chan struct{})
	}
	w := &writerRig{t: t, sys: sys, free: cfg.Free, done: cfg.Done}
	w.pid = sys.Root.Spawn(Props(cfg))
	t.Cleanup(func() {
		if !w.stopped {
			_ = sys.Root.StopFuture(w.pid).Wait()
		}
	})
	return w
}

// stop stops the Writer and waits for its file goroutine to close the file (Done).
func (w *writerRig) stop() {
	w.t.Helper()
	w.stopped = true
	if err := w.sys.Root.StopFuture(w.pid).Wait(); err != nil {
		w.t.Fatal(err)
	}
	select {
	case <-w.done:
	case <-time.After(actortest.Wait):
		w.t.Fatal("Done not closed after the writer stopped")
	}
}

func (w *writerRig) send(b *messages.AccessLogBatch) { w.sys.Root.Send(w.pid, b) }

func (w *writerRig) stats() *messages.AccessLogStats {
	w.t.Helper()
	p := actortest.NewProbe(w.t, w.sys)
	w.sys.Root.Send(w.pid, &messages.StatsRequest{ReplyTo: p.PID})
	return actortest.Expect[*messages.AccessLogStats](p)
}

// waitStats polls the Writer's counts until ok says they are as expected.
func (w *writerRig) waitStats(what string, ok func(*messages.AccessLogStats) bool) *messages.AccessLogStats {
	w.t.Helper()
	deadline := time.Now().Add(actortest.Wait)
	for {
		s := w.stats()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: stats stuck at %+v", what, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitFree waits until n buffers are back on the free list.
func (w *writerRig) waitFree(n int) {
	w.t.Helper()
	deadline := time.Now().Add(actortest.Wait)
	for len(w.free) < n {
		if time.Now().After(deadline) {
			w.t.Fatalf("%d buffers back on the free list, want %d", len(w.free), n)
		}
		time.Sleep(time.Millisecond)
	}
	actortest.Equal(w.t, "buffers on the free list", len(w.free), n)
}

// batch makes a batch of lines "<name> <i>" in a buffer of capacity size.
func batch(name string, lines, size int) (*messages.AccessLogBatch, string) {
	buf := make([]byte, 0, size)
	for i := range lines {
		buf = fmt.Appendf(buf, "%s %d\n", name, i)
	}
	return &messages.AccessLogBatch{Buf: buf, Lines: lines}, string(buf)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriterWritesBatchesInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	w := spawnWriter(t, &Config{Path: path, File: f})
	var want strings.Builder
	lines, sent := 0, map[*byte]bool{}
	for i := range 10 {
		b, text := batch(fmt.Sprintf("b%d", i), i+1, 4096)
		sent[&b.Buf[:1][0]] = true
		w.send(b)
		want.WriteString(text)
		lines += i + 1
	}
	s := w.waitStats("all lines written", func(s *messages.AccessLogStats) bool { return s.Lines == uint64(lines) })
	actortest.Equal(t, "stats", *s, messages.AccessLogStats{Lines: uint64(lines), Bytes: uint64(want.Len())})
	w.waitFree(10)
	for range 10 {
		b := <-w.free
		if len(b) != 0 || cap(b) != 4096 || !sent[&b[:1][0]] {
			t.Fatalf("free list got a buffer of len %d, cap %d, sent: %v", len(b), cap(b), sent[&b[:1][0]])
		}
	}
	w.stop()
	actortest.Equal(t, "file", readFile(t, path), want.String())
}

// Without a File the goroutine opens Path itself, appending to what is there.
func TestWriterOpensItsPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w := spawnWriter(t, &Config{Path: path})
	b, text := batch("new", 2, 64)
	w.send(b)
	w.waitStats("written", func(s *messages.AccessLogStats) bool { return s.Lines == 2 })
	w.stop()
	actortest.Equal(t, "file", readFile(t, path), "old\n"+text)
}

// logrotate renames the file and sends SIGUSR1 (ReopenAccessLog): the lines sent before it are
// in the old file, those after in the new one, each exactly once and in order.
func TestWriterReopenAfterRotation(t *testing.T) {
	dir := t.TempDir()
	path, rotated := filepath.Join(dir, "access.log"), filepath.Join(dir, "access.log.1")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	w := spawnWriter(t, &Config{Path: path, File: f})
	var before, after strings.Builder
	for i := range 5 {
		b, text := batch(fmt.Sprintf("before%d", i), 3, 256)
		w.send(b)
		before.WriteString(text)
	}
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	w.sys.Root.Send(w.pid, &messages.ReopenAccessLog{})
	for i := range 5 {
		b, text := batch(fmt.Sprintf("after%d", i), 3, 256)
		w.send(b)
		after.WriteString(text)
	}
	s := w.waitStats("written and reopened", func(s *messages.AccessLogStats) bool { return s.Lines == 30 && s.Reopens == 1 })
	actortest.Equal(t, "stats", *s, messages.AccessLogStats{Lines: 30, Bytes: uint64(before.Len() + after.Len()), Reopens: 1})
	w.stop()
	actortest.Equal(t, "rotated file", readFile(t, rotated), before.String())
	actortest.Equal(t, "new file", readFile(t, path), after.String())
}

// A reopen that fails (the directory is gone) is counted as an error, and the lines go on to
// the old file.
func TestWriterReopenFailureKeepsTheOldFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "access.log")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	keep, err := os.Open(path) // to read the file once its name is gone
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	w := spawnWriter(t, &Config{Path: path, File: f})
	w.sys.Root.Send(w.pid, &messages.ReopenAccessLog{})
	b, text := batch("still", 2, 64)
	w.send(b)
	s := w.waitStats("written after the failed reopen", func(s *messages.AccessLogStats) bool { return s.Lines == 2 })
	actortest.Equal(t, "stats", *s, messages.AccessLogStats{Lines: 2, Bytes: uint64(len(text)), Errors: 1})
	w.stop()
	got, err := io.ReadAll(keep)
	if err != nil {
		t.Fatal(err)
	}
	actortest.Equal(t, "old file", string(got), text)
}

// A write that fails costs its lines (Dropped) and counts an error; the buffer still comes back.
func TestWriterWriteFailureCountsDroppedLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	readOnly, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	w := spawnWriter(t, &Config{Path: path, File: readOnly})
	b, _ := batch("lost", 4, 64)
	w.send(b)
	s := w.waitStats("write failed", func(s *messages.AccessLogStats) bool { return s.Errors == 1 })
	actortest.Equal(t, "stats", *s, messages.AccessLogStats{Dropped: 4, Errors: 1})
	w.waitFree(1)
	w.stop()
}

// A file goroutine that falls behind (a write blocks) makes the Writer drop the batches beyond
// its queue, counting their lines; nothing blocks the sender, every line is written or counted
// dropped, the written batches are whole and in the order sent, and every buffer comes back.
func TestWriterDropsWhenBehind(t *testing.T) {
	r, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	setPipeSize(t, wr, 64<<10) // a pipe holds 16 pages: make it 64 KiB whatever the page size
	const (
		size    = 64 << 10
		lines   = 16 // of 4 KiB each
		batches = 8
	)
	w := spawnWriter(t, &Config{Path: "pipe", File: wr, QueueBatches: 1, Free: make(chan []byte, batches)})
	for i := range batches {
		buf := make([]byte, 0, size)
		for j := range lines {
			line := fmt.Appendf(nil, "batch %d line %d ", i, j)
			line = append(line, bytes.Repeat([]byte{'.'}, 4096-len(line)-1)...)
			buf = append(append(buf, line...), '\n')
		}
		w.send(&messages.AccessLogBatch{Buf: buf, Lines: lines})
	}
	// Nobody reads the pipe: at most one batch fits in it, one is stuck in the write and one
	// waits in the queue.
	s := w.waitStats("dropped", func(s *messages.AccessLogStats) bool { return s.Dropped >= (batches-3)*lines })
	if s.Dropped%lines != 0 || s.Dropped > (batches-1)*lines || s.Errors != 0 {
		t.Fatalf("stats %+v: want whole batches dropped, not every one, and no error", s)
	}

	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(r) // until the file goroutine closes the write end
		got <- b
	}()
	s = w.waitStats("every line written or dropped", func(s *messages.AccessLogStats) bool {
		return s.Lines+s.Dropped == batches*lines
	})
	w.waitFree(batches)
	w.stop()
	var out []byte
	select {
	case out = <-got:
	case <-time.After(actortest.Wait):
		t.Fatal("the pipe was not closed")
	}
	written := int(s.Lines / lines)
	actortest.Equal(t, "bytes written", len(out), written*size)
	actortest.Equal(t, "bytes counted", s.Bytes, uint64(written*size))
	prev := -1
	for k := range written {
		chunk := out[k*size : (k+1)*size]
		var i int
		if _, err := fmt.Sscanf(string(chunk), "batch %d line 0 ", &i); err != nil || i <= prev {
			t.Fatalf("written batch %d starts %q: want a batch sent after batch %d", k, chunk[:20], prev)
		}
		for j := range lines {
			want := fmt.Sprintf("batch %d line %d ", i, j)
			if !bytes.HasPrefix(chunk[j*4096:], []byte(want)) || chunk[j*4096+4095] != '\n' {
				t.Fatalf("written batch %d, line %d: not whole %q", k, j, want)
			}
		}
		prev = i
	}
	if written < 1 || written > 3 {
		t.Fatalf("%d batches written, want 1 to 3 (what the pipe, the write and the queue held)", written)
	}
}

// setPipeSize sets the capacity of the pipe f is an end of.
func setPipeSize(t *testing.T, f *os.File, size int) {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	if err := rc.Control(func(fd uintptr) {
		if _, err = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, size); err == nil {
			got, err = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	actortest.Equal(t, "pipe size", got, size)
}
