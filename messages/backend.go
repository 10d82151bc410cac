package messages

// Backend is one configured upstream server. The list of backends is fixed at start-up; actors
// refer to a backend by its index in that list (listing order is the contract's last tie-break).
type Backend struct {
	// Addr is the dial address, "host:port".
	Addr string
	// Weight is the backend's share of the traffic relative to the others' (every policy reads
	// it). Zero means 1.
	Weight int
}
