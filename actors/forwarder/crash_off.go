//go:build !crashtest

package forwarder

// crashBuild is true only in binaries built with -tags crashtest, where a request header can
// crash a Forwarder on purpose (end-to-end tests of supervision). Normal builds never look.
const crashBuild = false
