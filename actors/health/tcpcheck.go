package health

import "net"

// tcpCheck is the tcp check: a backend passes when the prober's connection to it is established
// within the probe's timeout. It sends and reads nothing; the prober closes the connection at
// once. It learns no counters.
type tcpCheck struct{}

// Check implements Checker: the connection exists, so the backend passes.
func (tcpCheck) Check(net.Conn) (Result, error) { return Result{}, nil }

// Compile-time interface checks.
var _ Checker = tcpCheck{}
