package messages

// Backend is one configured upstream server. Actors refer to a backend by its index in the
// configured list (listing order is the contract's last tie-break).
type Backend struct {
	// Addr is the dial address, "host:port".
	Addr string
	// Weight is the backend's share of the traffic relative to the others' (every policy reads
	// it). Zero means 1.
	Weight int
	// MaxInFlight caps the requests in flight on this backend; more wait in the queue. Zero
	// means the global cap (--max-per-backend), if any.
	MaxInFlight int
	// Backup marks a backend that gets requests only while no other backend (no backend that is
	// not a backup) is usable: up, not ejected.
	Backup bool
	// Health overrides the http health check's request and expectations for this backend; an
	// empty field keeps the global one.
	Health HealthOverride
}

// HealthOverride is a backend's own http check settings, in the syntax of the --health-*
// flags (Status: "200-299,404").
type HealthOverride struct {
	Path, Method, Status, Body, Host string
}
