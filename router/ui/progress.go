package ui

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/autorouter/autorouter/router"
)

// progressWindow is how long a router's progress stays listed after its
// last update: long enough for a page polling every few seconds to see a
// build finish.
const progressWindow = time.Minute

// Progress tracks how the embedding of each auto router's utterances
// advances, for GET /ui/api/progress. It is safe for concurrent use; a nil
// *Progress tracks nothing.
type Progress struct {
	mu      sync.Mutex
	routers map[string]*progressEntry
}

// progressEntry is one router's embedding progress as /ui/api/progress
// lists it.
type progressEntry struct {
	Router string `json:"router"`
	// Done of Total utterances that needed embedding are embedded.
	Done  int `json:"done"`
	Total int `json:"total"`
	// PerSecond is the rate so far, in utterances per second.
	PerSecond float64 `json:"per_second"`
	// ETASeconds is the expected time left, 0 when finished or unknown.
	ETASeconds float64 `json:"eta_seconds"`
	// Finished is Done >= Total.
	Finished bool `json:"finished"`
	// Error says why the build failed; the build is over and not finished.
	Error string `json:"error,omitempty"`
	// Started is when this build's first update came; Updated its last.
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
}

// NewProgress returns a tracker of utterance-embedding progress; pass its
// Update as router.Options.OnProgress.
func NewProgress() *Progress {
	return &Progress{routers: map[string]*progressEntry{}}
}

// Update records one progress report. It is called from the goroutines
// that embed, once per batch of utterances, so it only takes a lock and
// copies.
func (p *Progress) Update(rp router.Progress) {
	if p == nil {
		return
	}
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.routers[rp.Router]
	if rp.Err != nil {
		if e == nil {
			e = &progressEntry{Router: rp.Router, Started: now}
			p.routers[rp.Router] = e
		}
		e.Error, e.Finished, e.ETASeconds, e.Updated = rp.Err.Error(), false, 0, now
		return
	}
	// A new build of the router starts over: a lower count, or a new
	// total, or one long after the last.
	if e == nil || rp.Done < e.Done || rp.Total != e.Total || now.Sub(e.Updated) > progressWindow {
		e = &progressEntry{Router: rp.Router, Started: now}
		p.routers[rp.Router] = e
	}
	e.Error = ""
	eta := rp.ETA().Seconds()
	if math.IsNaN(eta) || math.IsInf(eta, 0) {
		eta = 0
	}
	rate := rp.PerSecond
	if math.IsNaN(rate) || math.IsInf(rate, 0) {
		rate = 0
	}
	e.Done, e.Total, e.PerSecond, e.ETASeconds = rp.Done, rp.Total, rate, eta
	e.Finished = rp.Done >= rp.Total
	e.Updated = now
}

// entries lists the routers being built now or updated within the last
// minute, by name, and forgets older ones.
func (p *Progress) entries() []progressEntry {
	out := []progressEntry{}
	if p == nil {
		return out
	}
	now := time.Now()
	p.mu.Lock()
	for name, e := range p.routers {
		if now.Sub(e.Updated) > progressWindow {
			delete(p.routers, name)
			continue
		}
		out = append(out, *e)
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Router < out[j].Router })
	return out
}
