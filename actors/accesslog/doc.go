// Package accesslog implements the access log writer: the actor that owns the access log file.
//
// The event loops format the lines (one per request, see forwarder.Config.AccessLog) into
// batches of up to 64 KiB and send each batch here as *messages.AccessLogBatch: a message per
// batch, never per request. The Writer passes a batch to its file goroutine, which does the
// blocking write(2) off the actor; when that goroutine falls behind by QueueBatches batches, a
// new batch is dropped and its lines counted (Dropped), so a slow disk costs lines, never memory
// without bound and never a request's time. Written buffers go back to the loops through the
// free list (Config.Free).
//
// Messages it takes:
//   - *messages.AccessLogBatch from the event loops;
//   - *messages.ReopenAccessLog from main on SIGUSR1: the file goroutine closes the file and
//     opens its path again, after the batches before it and before those after it, so a rotation
//     (rename, then SIGUSR1) loses no line;
//   - *messages.AccessLogWritten and *messages.AccessLogReopened from its file goroutine;
//   - *messages.StatsRequest, answered with *messages.AccessLogStats.
//
// Stopping the actor closes the goroutine's queue: it writes what is queued, closes the file and
// then closes Config.Done. Stop it with a poison pill (PoisonFuture), which comes after the
// batches already in its mailbox; Stop, a system message, would overtake them. The file goroutine and its queue outlive a restart of the actor.
package accesslog
