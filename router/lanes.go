package router

import "context"

// lanes bound and share out the encoder among routing embeddings. Long
// texts may hold all but one CPU at once, so that a burst of long prompts
// (tens of milliseconds each) never leaves short ones (a millisecond or
// two) waiting behind them; short texts queue only on an encoder without
// micro-batching, where each run holds an OS thread in ONNX Runtime (a
// micro-batching encoder bounds its runs itself and needs its callers
// queued together to batch them).
type lanes struct {
	short     chan struct{}
	long      chan struct{}
	longChars int
}

func newLanes(cpus, longChars int) *lanes {
	cpus = max(cpus, 1)
	return &lanes{short: make(chan struct{}, cpus), long: make(chan struct{}, max(1, cpus-1)), longChars: longChars}
}

// acquire waits for a lane for a text of n bytes on an encoder that
// batches (or not), and returns the lane held, nil when none is needed;
// release it with release. It fails when ctx ends first.
func (l *lanes) acquire(ctx context.Context, n int, batching bool) (chan struct{}, error) {
	var lane chan struct{}
	switch {
	case n >= l.longChars:
		lane = l.long
	case !batching:
		lane = l.short
	default:
		return nil, nil
	}
	select {
	case lane <- struct{}{}:
		return lane, nil
	default:
	}
	select {
	case lane <- struct{}{}:
		return lane, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func release(lane chan struct{}) {
	if lane != nil {
		<-lane
	}
}
