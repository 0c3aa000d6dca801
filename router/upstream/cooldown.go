package upstream

import (
	"sync"
	"sync/atomic"
	"time"
)

// FailWindow is the window over which a deployment's failed requests are
// counted against allowed_fails, as LiteLLM counts them per minute.
const FailWindow = time.Minute

// Cooldowns is the health of every deployment by id: failed requests in
// the last minute and cooldowns. One Cooldowns outlives config generations
// (a reload does not forgive a failing upstream), and it can be shared
// across replicas through a Shared. It is safe for concurrent use; reading
// a deployment's cooldown costs one atomic load.
type Cooldowns struct {
	mu     sync.Mutex
	byID   map[string]*health
	shared atomic.Pointer[sharedBox]
}

// Shared carries cooldowns between replicas (Redis, in the store package).
type Shared interface {
	// Publish tells the other replicas that deployment id cools down until
	// until. It must not block: a slow or failed publish is the Shared's
	// problem, never a request's.
	Publish(id string, until time.Time)
}

type sharedBox struct{ s Shared }

// health is one deployment's failure record.
type health struct {
	// until is the end of the current cooldown in Unix nanoseconds; 0 or a
	// past time means the deployment is healthy.
	until atomic.Int64
	// probing is set while a probe request tests a cooled-down deployment;
	// lastProbe is when the last one started (Unix nanoseconds).
	probing   atomic.Bool
	lastProbe atomic.Int64

	mu    sync.Mutex
	fails []int64 // start times of recent failed requests, oldest first
}

// NewCooldowns returns an empty health record.
func NewCooldowns() *Cooldowns { return &Cooldowns{byID: map[string]*health{}} }

// SetShared makes cooldowns reach other replicas; nil stops sharing.
func (c *Cooldowns) SetShared(s Shared) {
	if s == nil {
		c.shared.Store(nil)
		return
	}
	c.shared.Store(&sharedBox{s})
}

// health returns the record of id, creating it.
func (c *Cooldowns) health(id string) *health {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.byID[id]
	if !ok {
		h = &health{}
		c.byID[id] = h
	}
	return h
}

// Apply records a cooldown learned from another replica.
func (c *Cooldowns) Apply(id string, until time.Time) {
	h := c.health(id)
	for {
		cur := h.until.Load()
		if cur >= until.UnixNano() || h.until.CompareAndSwap(cur, until.UnixNano()) {
			return
		}
	}
}

// Until returns the end of id's cooldown, or the zero time when it is not
// cooling down.
func (c *Cooldowns) Until(id string) time.Time {
	c.mu.Lock()
	h := c.byID[id]
	c.mu.Unlock()
	if h == nil {
		return time.Time{}
	}
	u := h.until.Load()
	if u <= time.Now().UnixNano() {
		return time.Time{}
	}
	return time.Unix(0, u)
}

// coolingAt reports whether h is on cooldown at now (Unix nanoseconds).
func (h *health) coolingAt(now int64) bool { return h.until.Load() > now }

// fail records one failed request at now. When more than allowed requests
// failed within FailWindow the deployment cools down for cooldown, and
// fail reports the cooldown's end.
func (h *health) fail(now time.Time, allowed int, cooldown time.Duration) (time.Time, bool) {
	n := now.UnixNano()
	h.mu.Lock()
	defer h.mu.Unlock()
	cut := n - int64(FailWindow)
	i := 0
	for i < len(h.fails) && h.fails[i] < cut {
		i++
	}
	h.fails = append(h.fails[:0], h.fails[i:]...)
	h.fails = append(h.fails, n)
	if len(h.fails) > allowed+1 {
		h.fails = h.fails[len(h.fails)-allowed-1:]
	}
	if len(h.fails) <= allowed {
		return time.Time{}, false
	}
	until := now.Add(cooldown)
	h.until.Store(until.UnixNano())
	h.fails = h.fails[:0]
	return until, true
}

// succeed ends a cooldown and forgets past failures.
func (h *health) succeed() {
	if h.until.Load() != 0 {
		h.until.Store(0)
	}
	h.mu.Lock()
	h.fails = h.fails[:0]
	h.mu.Unlock()
}

// tryProbe claims the right to send one request to a cooled-down
// deployment: at most one at a time, and at most one per interval.
func (h *health) tryProbe(now time.Time, interval time.Duration) bool {
	if now.UnixNano()-h.lastProbe.Load() < int64(interval) {
		return false
	}
	if !h.probing.CompareAndSwap(false, true) {
		return false
	}
	h.lastProbe.Store(now.UnixNano())
	return true
}

// publish shares a new cooldown.
func (c *Cooldowns) publish(id string, until time.Time) {
	if b := c.shared.Load(); b != nil {
		b.s.Publish(id, until)
	}
}
