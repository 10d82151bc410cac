//go:build !linux

package forwarder

// The Forwarders run on epoll event loops, which only Linux has; a build for another system
// stops here, on purpose, with this name in the compiler's message.
var _ = loadbalancer_needs_linux_epoll
