package health

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/messages"
)

// noticeWanted records a *messages.HealthCheckDue and starts its round now if no round is
// running and the notice gap since the last round has passed; otherwise the round waits, for
// the running round to end or for the gap timer. Notices that wait together make one round.
func (m *Monitor) noticeWanted(ctx actor.Context) {
	m.wantNotice = true
	if m.running {
		return // finishRound takes it from here
	}
	m.startNoticeRound(ctx)
}

// startNoticeRound starts the round a waiting notice asked for, unless the notice gap since the
// last round has not passed yet; then the gap timer, armed if it is not, starts it later.
func (m *Monitor) startNoticeRound(ctx actor.Context) {
	gap := m.cfg.noticeGap()
	wait := time.Until(m.ended.Add(gap))
	if gap <= 0 || m.ended.IsZero() || wait <= 0 {
		m.startRound(ctx)
		return
	}
	if m.cancelGap != nil {
		return // armed already: this notice joins the one waiting
	}
	m.gapGen++
	m.cancelGap = m.timers.SendOnce(wait, m.self, &messages.NoticeGapElapsed{Gen: m.gapGen})
}

// handleGapElapsed starts the round the waiting notices asked for.
func (m *Monitor) handleGapElapsed(ctx actor.Context, g *messages.NoticeGapElapsed) {
	if m.cancelGap == nil || g.Gen != m.gapGen {
		return // from a cancelled timer or a previous incarnation
	}
	m.cancelGap = nil
	if !m.wantNotice || m.running {
		return // cannot happen: starting a round cancels the timer; kept for safety
	}
	m.startRound(ctx)
}

// cancelGapTimer disarms the gap timer, if armed. A message it already sent is stale by its
// generation.
func (m *Monitor) cancelGapTimer() {
	if m.cancelGap != nil {
		m.cancelGap()
		m.cancelGap = nil
	}
	m.gapGen++
}
