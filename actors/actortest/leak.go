package actortest

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// RunCheckingLeaks runs a package's tests (call it from TestMain and pass the result to os.Exit)
// and fails the run if goroutines whose stacks mention marker, a package path such as
// "/actors/health.", are still running a few seconds after the tests, as net/http's
// main_test.go does. protoactor's own background goroutines do not mention the package.
func RunCheckingLeaks(m *testing.M, marker string) int {
	code := m.Run()
	if code == 0 {
		if leaked := SettleLeaks(5*time.Second, marker); len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "%d goroutines leaked:\n\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
			code = 1
		}
	}
	return code
}

// SettleLeaks waits up to d for the goroutines whose stacks mention marker to end (goroutines end
// asynchronously after their work is done, hence the wait), and returns the stacks of those
// still running. The calling goroutine is not counted.
func SettleLeaks(d time.Duration, marker string) []string {
	deadline := time.Now().Add(d)
	for {
		leaked := GoroutinesWith(marker)
		if len(leaked) == 0 || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// GoroutinesWith returns the stacks of the goroutines, other than the caller, whose stacks
// mention marker.
func GoroutinesWith(marker string) []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	all := strings.Split(string(buf), "\n\n")
	var found []string
	for _, g := range all[1:] { // all[0] is the caller
		if strings.Contains(g, marker) {
			found = append(found, g)
		}
	}
	return found
}
