package main

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// GET, HEAD and PUT on the files of the working directory.
//
// A file is never written in place: PUT streams the body into a temporary file in the same
// directory (named ".httpserver-NAME-*", which no request can name, since a name cannot hold
// a dot) and renames it over NAME once the whole body is there. A GET that opened the old
// file keeps reading the old content; one that opens after the rename reads the new; none
// sees half a file. A body that does not arrive whole leaves NAME untouched and the temporary
// file removed. The data is not fsynced: a PUT survives a crash of this process, not of the
// machine.

// errNotRegular is the failure for a name that exists but is not a regular file (a
// directory, a FIFO, a device): the server may not read or write it, so the answer is 403.
var errNotRegular = errors.New("httpserver: not a regular file")

// statusFor maps a failure to read or store a file to the status the client gets: 404 when
// the file does not exist, 403 when the server may not read or write it, 500 for anything
// else (a symlink loop, an I/O error, a full disk).
func statusFor(err error) int {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return 404
	case errors.Is(err, fs.ErrPermission), errors.Is(err, errNotRegular),
		errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.EROFS):
		return 403
	}
	return 500
}

// openRegular opens name for reading and returns it with its size. It fails with
// errNotRegular for anything but a regular file; O_NONBLOCK keeps a FIFO from blocking the
// open (it changes nothing for a regular file).
func openRegular(name string) (*os.File, int64, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, errNotRegular
	}
	return f, st.Size(), nil
}

// serveGet answers GET /name: 200 with the file. The entry is logged, hex read from the open
// descriptor, before the response is written.
func (cc *conn) serveGet() bool {
	r := &cc.req
	f, size, err := openRegular(string(r.name))
	if err != nil {
		return cc.fail(statusFor(err))
	}
	defer f.Close()
	cc.srv.log.success(methodGet, r.name, size, f)
	cc.extendDeadline()
	cc.writeHead(200, size)
	return cc.sendBody(f, size) == nil
}

// serveHead answers HEAD /name: 200 with the Content-Length a GET would have, no body.
func (cc *conn) serveHead() bool {
	r := &cc.req
	f, size, err := openRegular(string(r.name))
	if err != nil {
		return cc.fail(statusFor(err))
	}
	f.Close()
	cc.srv.log.success(methodHead, r.name, size, nil)
	cc.writeHead(200, size)
	return true
}

// putTarget checks that name may be replaced and returns the mode the new file gets: the old
// file's, or 0666 less the umask for a new one.
func (s *server) putTarget(name string) (fs.FileMode, error) {
	st, err := os.Stat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s.newFileMode, nil
	case err != nil:
		return 0, err
	case !st.Mode().IsRegular():
		return 0, errNotRegular
	}
	if err := syscall.Access(name, 2 /* W_OK */); err != nil {
		return 0, &fs.PathError{Op: "access", Path: name, Err: err}
	}
	return st.Mode().Perm(), nil
}

// servePut answers PUT /name: the body of Content-Length bytes goes to a temporary file that
// is renamed over name when complete, then 201 (also when name existed). A body that does not
// arrive whole is logged as FAIL with 400 (500 when the disk failed) and closes the
// connection.
func (cc *conn) servePut() bool {
	r := &cc.req
	if r.contentLength < 0 {
		return cc.fail(400) // no body announced: nothing to store, and nothing to skip
	}
	name := string(r.name)
	mode, err := cc.srv.putTarget(name)
	if err != nil {
		return cc.fail(statusFor(err))
	}
	tmp, err := os.CreateTemp(".", ".httpserver-"+name+"-*")
	if err != nil {
		return cc.fail(statusFor(err))
	}
	defer tmp.Close()
	keep := false
	defer func() {
		if !keep {
			os.Remove(tmp.Name())
		}
	}()
	if err := cc.receiveBody(tmp, r.contentLength); err != nil {
		code := 400 // the client ended early, stalled past the timeout, or reset
		if isDiskError(err) {
			code = 500
		}
		cc.srv.log.fail(r.line, code)
		cc.writeHead(code, 0)
		return false
	}
	if err := tmp.Chmod(mode); err != nil {
		return cc.fail(statusFor(err))
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return cc.fail(statusFor(err))
	}
	keep = true
	cc.srv.log.success(methodPut, r.name, r.contentLength, tmp)
	cc.extendDeadline()
	cc.writeHead(201, 0)
	return true
}

// isDiskError reports whether a failed body copy was the server's side failing to write,
// rather than the client's side failing to send.
func isDiskError(err error) bool {
	for _, e := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EFBIG, syscall.EROFS} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
