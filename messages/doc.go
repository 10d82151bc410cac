// Package messages holds every message type that crosses an actor boundary in the load
// balancer, one file per conversation. It has no logic and imports nothing from actors/.
//
// Every message is sent as a pointer and is immutable once sent, unless its comment says the
// sender may reuse it after a reply: the hot path reuses its PickBackend and ReleaseLease, and
// the Dispatcher one BackendPicked per holder, each under the protocol its type's comment states.
// Each type's comment says who sends it to whom and who owns its fields afterwards.
package messages
