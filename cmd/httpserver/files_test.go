package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestStatusFor(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		// Missing, as os.Open reports it.
		{"not exist", &fs.PathError{Op: "open", Path: "a", Err: syscall.ENOENT}, 404},
		// Permission, both errnos, and wrapped further.
		{"EACCES", &fs.PathError{Op: "open", Path: "a", Err: syscall.EACCES}, 403},
		{"EPERM", syscall.EPERM, 403},
		{"wrapped EACCES", fmt.Errorf("put: %w", &fs.PathError{Op: "open", Path: "a", Err: syscall.EACCES}), 403},
		// A directory or special file is not a file the server may read or write.
		{"not regular", errNotRegular, 403},
		{"EISDIR", &os.LinkError{Op: "rename", Old: "t", New: "a", Err: syscall.EISDIR}, 403},
		{"read-only file system", syscall.EROFS, 403},
		// Anything else.
		{"symlink loop", &fs.PathError{Op: "open", Path: "a", Err: syscall.ELOOP}, 500},
		{"I/O error", syscall.EIO, 500},
		{"full disk", syscall.ENOSPC, 500},
		{"other", errors.New("something"), 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := statusFor(tt.err); got != tt.want {
				t.Errorf("statusFor(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestOpenRegular(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("file", []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir("dir", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("loop", "loop"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("file", "link"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		file     string
		wantSize int64
		want     int // 0 for success, else the status of the failure
	}{
		{"regular file", "file", 5, 0},
		// A symlink to a regular file is followed.
		{"symlink", "link", 5, 0},
		{"missing", "missing", 0, 404},
		{"directory", "dir", 0, 403},
		// A FIFO must neither block the open nor be read.
		{"fifo", "fifo", 0, 403},
		{"symlink loop", "loop", 0, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, size, err := openRegular(tt.file)
			if tt.want == 0 {
				if err != nil || size != tt.wantSize {
					t.Fatalf("got size %d, %v; want %d", size, err, tt.wantSize)
				}
				f.Close()
				return
			}
			if err == nil {
				f.Close()
				t.Fatalf("got no error, want status %d", tt.want)
			}
			if got := statusFor(err); got != tt.want {
				t.Errorf("got %v (status %d), want status %d", err, got, tt.want)
			}
		})
	}
}

func TestPutTarget(t *testing.T) {
	t.Chdir(t.TempDir())
	s := &server{newFileMode: 0o640}
	if err := os.WriteFile("private", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir("dir", 0o755); err != nil {
		t.Fatal(err)
	}
	// A new file gets the server's new-file mode, an existing one keeps its own.
	if m, err := s.putTarget("new"); err != nil || m != 0o640 {
		t.Errorf("new file: got %v, %v; want 0640", m, err)
	}
	if m, err := s.putTarget("private"); err != nil || m != 0o600 {
		t.Errorf("existing file: got %v, %v; want 0600", m, err)
	}
	if _, err := s.putTarget("dir"); statusFor(err) != 403 {
		t.Errorf("directory: got %v, want a 403 failure", err)
	}
}

func TestIsDiskError(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&os.SyscallError{Syscall: "splice", Err: syscall.ENOSPC}, true},
		{&fs.PathError{Op: "write", Path: "t", Err: syscall.EIO}, true},
		{&os.SyscallError{Syscall: "splice", Err: syscall.ECONNRESET}, false},
		{os.ErrDeadlineExceeded, false},
	} {
		if got := isDiskError(tt.err); got != tt.want {
			t.Errorf("isDiskError(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
