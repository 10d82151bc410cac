package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// proc is a process the harness started, in a process group of its own so that stopping it
// also stops the workers it forked (nginx).
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when the leader has exited; waitErr is set before
	waitErr error
}

// startProc starts argv in dir with its stdout and stderr appended to logPath. env adds to the
// harness's environment.
func startProc(name string, argv, env []string, dir, logPath string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	// A process restarted after a crash appends to the same log, after a marker.
	fmt.Fprintf(logf, "%s %s\n", startMarker, strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Own process group: Ctrl-C on the terminal reaches only the harness, which then stops
	// the group. Pdeathsig is the safety net should the harness itself be killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the process group, SIGKILL after a grace period, and makes sure nothing
// of the group is left.
func (p *proc) stop() {
	pgid := p.pid()
	if p.alive() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(3 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.exited
		}
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL) // stragglers (workers whose master is gone)
}

// startMarker begins the lines a process start adds to its log.
const startMarker = "=== bench: started:"

// logTail is the end of what the process wrote to its log, for error messages.
func (p *proc) logTail(lines int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.LastIndex(s, startMarker); i >= 0 {
		if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
			s = s[i+j+1:]
		}
	}
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	all := strings.Split(s, "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// procStat is the part of /proc/PID/stat the harness uses.
type procStat struct {
	ppid       int
	ticks      int64 // utime + stime
	childTicks int64 // cutime + cstime: children that exited and were waited for
}

func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	// The command name is in parentheses and may itself contain spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15, cutime 16, cstime 17.
	if len(f) < 15 {
		return procStat{}, false
	}
	n := func(i int) int64 { v, _ := strconv.ParseInt(f[i], 10, 64); return v }
	return procStat{ppid: int(n(1)), ticks: n(11) + n(12), childTicks: n(13) + n(14)}, true
}

// procTree is root and all its descendants.
func procTree(root int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok {
			children[st.ppid] = append(children[st.ppid], pid)
		}
	}
	tree := []int{root}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}

// statusKiB reads a "Vm...:  N kB" line of /proc/PID/status.
func statusKiB(pid int, field string) (int64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// meter measures one process tree's CPU time and peak memory over one run.
type meter struct {
	pids    []int
	ticks0  map[int]int64
	resetOK bool // every process's VmHWM was reset when the run started
	stopc   chan struct{}
	donec   chan int64 // the sampler's peak of the summed VmRSS, in KiB
}

func startMeter(root int) *meter {
	m := &meter{pids: procTree(root), ticks0: map[int]int64{}, resetOK: true,
		stopc: make(chan struct{}), donec: make(chan int64, 1)}
	for _, pid := range m.pids {
		// "5" resets the peak RSS (VmHWM) to the current RSS (Linux 4.0+).
		path := filepath.Join("/proc", strconv.Itoa(pid), "clear_refs")
		if err := os.WriteFile(path, []byte("5"), 0); err != nil {
			m.resetOK = false
		}
		if st, ok := readStat(pid); ok {
			m.ticks0[pid] = st.ticks
		}
	}
	pids := m.pids
	go func() {
		var peak int64
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			var sum int64
			for _, pid := range pids {
				kib, _ := statusKiB(pid, "VmRSS")
				sum += kib
			}
			peak = max(peak, sum)
			select {
			case <-m.stopc:
				m.donec <- peak
				return
			case <-t.C:
			}
		}
	}()
	return m
}

// stop ends the measurement: CPU seconds used since startMeter, and peak RSS in bytes (sampled
// says it comes from 50 ms samples, the kernel having refused to reset the peak).
func (m *meter) stop() (cpu float64, peak int64, sampled bool) {
	var ticks, hwm int64
	for _, pid := range m.pids {
		if st, ok := readStat(pid); ok {
			if t0, ok := m.ticks0[pid]; ok {
				ticks += st.ticks - t0
			}
		}
		kib, _ := statusKiB(pid, "VmHWM")
		hwm += kib
	}
	close(m.stopc)
	if rss := <-m.donec; !m.resetOK {
		return float64(ticks) / clockTicks, rss * 1024, true
	}
	return float64(ticks) / clockTicks, hwm * 1024, false
}

// noiseMeter measures the CPU time that processes outside the benchmark use during a run: all
// busy time on the machine minus the harness's and its descendants' (the proxy, the backends,
// wrk, the uploader).
type noiseMeter struct {
	start       time.Time
	busy0, own0 int64
}

func startNoiseMeter() *noiseMeter {
	return &noiseMeter{start: time.Now(), busy0: machineBusyTicks(), own0: sessionTicks()}
}

// stop says how many CPUs, on average, other processes kept busy since startNoiseMeter.
func (n *noiseMeter) stop() float64 {
	other := (machineBusyTicks() - n.busy0) - (sessionTicks() - n.own0)
	secs := time.Since(n.start).Seconds()
	if secs <= 0 || other < 0 {
		return 0
	}
	return float64(other) / clockTicks / secs
}

// machineBusyTicks is the machine's busy CPU time so far from the "cpu" line of /proc/stat:
// user, nice, system and steal (time the hypervisor gave to others). Not irq and softirq: the
// kernel accounts the softirq work of the benchmark's own loopback traffic there rather than to
// its processes, which would make the benchmark look like noise.
func machineBusyTicks() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		if i >= 3 && i <= 6 {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return busy
}

// sessionTicks is the CPU time of the harness and all its descendants, including those that
// exited and were waited for (wrk), so that differences of it are right even when a process
// exits in between.
func sessionTicks() int64 {
	self := os.Getpid()
	var t int64
	for _, pid := range procTree(self) {
		if st, ok := readStat(pid); ok {
			t += st.ticks
			if pid == self {
				t += st.childTicks
			}
		}
	}
	return t
}

var errNotFound = errors.New("not installed")

// lookTool finds a program on PATH (also in the sbin directories, which a normal user's PATH may
// lack: Debian puts nginx and haproxy in /usr/sbin).
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errNotFound
}
