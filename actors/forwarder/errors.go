package forwarder

import (
	"errors"
	"net"
	"strconv"

	"github.com/loadbalancer/loadbalancer/actors/forwarder/wire"
	"github.com/loadbalancer/loadbalancer/messages"
)

// failure is why the load balancer answers a request itself.
type failure uint8

const (
	failNoBackend    failure = iota + 1 // no backend up (or every connect failed)
	failQueueFull                       // too many requests were waiting for a slot
	failQueueTimeout                    // the wait for a slot timed out
	failUpstream                        // the backend's response was broken or missing
	failTimeout                         // the backend sent no response head in time
	failStopping                        // the load balancer is stopping
	failInternal                        // a bug (a panic) in the load balancer
)

// classic500 is the classic contract's answer to every failure, byte for byte.
var classic500 = []byte("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")

// gatewayResponses are the gateway-mode answers, built once.
var gatewayResponses = map[failure][]byte{
	failNoBackend:    textResponse(503, "Service Unavailable", "no backend is available"),
	failQueueFull:    textResponse(503, "Service Unavailable", "all backends are busy"),
	failQueueTimeout: textResponse(503, "Service Unavailable", "all backends are busy"),
	failUpstream:     textResponse(502, "Bad Gateway", "the backend's response failed"),
	failTimeout:      textResponse(504, "Gateway Timeout", "the backend did not answer in time"),
	failStopping:     textResponse(503, "Service Unavailable", "the load balancer is stopping"),
	failInternal:     textResponse(500, "Internal Server Error", "internal error"),
}

// errorResponse is the one place that maps a failure to the bytes the client gets.
func errorResponse(mode ErrorMode, f failure) []byte {
	if mode == ErrorsClassic {
		return classic500
	}
	return gatewayResponses[f]
}

// failureStatus is the status of the answer errorResponse gives.
func failureStatus(mode ErrorMode, f failure) int {
	if mode == ErrorsClassic {
		return 500
	}
	switch f {
	case failUpstream:
		return 502
	case failTimeout:
		return 504
	case failInternal:
		return 500
	}
	return 503
}

// reason is the failure as the metrics and the access log name it.
func (f failure) reason() messages.LocalReason {
	switch f {
	case failNoBackend:
		return messages.LocalNoBackend
	case failQueueFull:
		return messages.LocalQueueFull
	case failQueueTimeout:
		return messages.LocalQueueTimeout
	case failUpstream:
		return messages.LocalBadGateway
	case failTimeout:
		return messages.LocalUpstreamTimeout
	case failStopping:
		return messages.LocalStopping
	}
	return messages.LocalInternal
}

// clientErrorReason names the reason for a refused request's status.
func clientErrorReason(status int) messages.LocalReason {
	switch status {
	case 408:
		return messages.LocalRequestTimeout
	case 414:
		return messages.LocalURITooLong
	case 431:
		return messages.LocalHeaderTooLarge
	case 501:
		return messages.LocalNotImplemented
	case 505:
		return messages.LocalVersion
	}
	return messages.LocalBadRequest
}

func noBackendFailure(r messages.NoBackendReason) failure {
	switch r {
	case messages.NoBackendQueueTimeout:
		return failQueueTimeout
	case messages.NoBackendQueueFull:
		return failQueueFull
	case messages.NoBackendStopping:
		return failStopping
	}
	return failNoBackend
}

// badRequestResponse answers a request the load balancer refuses to forward (its status and
// bytes); the connection closes after it.
func badRequestResponse(err error) (int, []byte) {
	var we *wire.Error
	status := 400
	if errors.As(err, &we) && we.Status != 0 {
		status = we.Status
	}
	switch status {
	case 414:
		return 414, resp414
	case 431:
		return 431, resp431
	case 501:
		return 501, resp501
	case 505:
		return 505, resp505
	}
	return 400, resp400
}

var (
	resp400 = closingResponse(400, "Bad Request")
	resp414 = closingResponse(414, "URI Too Long")
	resp431 = closingResponse(431, "Request Header Fields Too Large")
	resp501 = closingResponse(501, "Not Implemented")
	resp505 = closingResponse(505, "HTTP Version Not Supported")
	resp408 = closingResponse(408, "Request Timeout")
)

func closingResponse(code int, reason string) []byte {
	return []byte("HTTP/1.1 " + itoa(code) + " " + reason + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

func textResponse(code int, reason, body string) []byte {
	body += "\n"
	return []byte("HTTP/1.1 " + itoa(code) + " " + reason + "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
		itoa(len(body)) + "\r\n\r\n" + body)
}

func itoa(n int) string { return strconv.Itoa(n) }

// isTimeout reports whether err is a deadline expiry.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
