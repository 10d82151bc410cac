//go:build !linux

package evloop

// The load balancer's hot path runs on epoll, which only Linux has. Building it elsewhere
// stops here, on purpose, with this name in the compiler's message.
var _ = loadbalancer_needs_linux_epoll
