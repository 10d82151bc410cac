//go:build crashtest

package forwarder

// crashBuild: this binary was built with -tags crashtest for end-to-end tests; requests with an
// X-Crash-Test header crash their Forwarder. Never ship such a build.
const crashBuild = true
