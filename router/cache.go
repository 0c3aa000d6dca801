package router

import (
	"container/list"
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// decisionCache remembers routing decisions by router and exact embedded
// text, so that an agent loop resending the same user turn is routed
// without running the encoder again. A router is immutable, so a cached
// decision is the decision a fresh run would make; a changed router is a
// new router with an id of its own, and its predecessor's entries are
// dropped when it goes. The cache is bounded by entries and by bytes,
// least recently used first out, and sharded so that concurrent requests
// rarely share a lock.
type decisionCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
	hits   atomic.Uint64
	misses atomic.Uint64
	evicts atomic.Uint64
}

const cacheShards = 16

type cacheShard struct {
	mu         sync.Mutex
	entries    map[cacheKey]*list.Element
	lru        list.List // front: most recently used; values are *cacheEntry
	bytes      int64
	maxEntries int
	maxBytes   int64
}

type cacheKey struct {
	router uint64
	text   string
}

// cacheEntry is what a decision needs to be rebuilt: everything but its
// timings and text.
type cacheEntry struct {
	key      cacheKey
	model    string
	route    string
	score    float32
	scores   []RouteScore
	fallback bool
	reason   string
	size     int64
}

// Cache defaults; see config.RouterSettings.
const (
	DefaultCacheEntries = 10_000
	DefaultCacheBytes   = 32 << 20
)

// newDecisionCache makes a cache of at most entries entries and bytes
// bytes; entries <= 0 makes one that stores nothing.
func newDecisionCache(entries int, bytes int64) *decisionCache {
	c := &decisionCache{seed: maphash.MakeSeed()}
	c.resize(entries, bytes)
	return c
}

// resize changes the bounds, evicting what no longer fits.
func (c *decisionCache) resize(entries int, bytes int64) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		if s.entries == nil {
			s.entries = map[cacheKey]*list.Element{}
		}
		s.maxEntries = max(0, entries/cacheShards)
		if entries > 0 && s.maxEntries == 0 {
			s.maxEntries = 1
		}
		s.maxBytes = bytes / cacheShards
		c.evictLocked(s)
		s.mu.Unlock()
	}
}

func (c *decisionCache) shard(k cacheKey) *cacheShard {
	h := maphash.String(c.seed, k.text) ^ k.router
	return &c.shards[h%cacheShards]
}

// get returns the cached decision for text on router r, if any.
func (c *decisionCache) get(r *autoRouter, text string) (Decision, bool) {
	k := cacheKey{r.id, text}
	s := c.shard(k)
	s.mu.Lock()
	el, ok := s.entries[k]
	if !ok {
		s.mu.Unlock()
		c.misses.Add(1)
		return Decision{}, false
	}
	s.lru.MoveToFront(el)
	e := el.Value.(*cacheEntry)
	d := Decision{Router: r.name, Model: e.model, Route: e.route, Score: e.score, Fallback: e.fallback, Reason: e.reason,
		Text: text, Cached: true, Scores: append(make([]RouteScore, 0, len(e.scores)), e.scores...)}
	s.mu.Unlock()
	c.hits.Add(1)
	return d, true
}

// put remembers d, a fresh decision for text on router r. Decisions that
// fell back on an error are not cached: the next request tries again.
func (c *decisionCache) put(r *autoRouter, text string, d *Decision) {
	if d.Err != nil {
		return
	}
	k := cacheKey{r.id, text}
	s := c.shard(k)
	e := &cacheEntry{key: k, model: d.Model, route: d.Route, score: d.Score, fallback: d.Fallback, reason: d.Reason,
		scores: append([]RouteScore(nil), d.Scores...)}
	e.size = int64(len(text)) + 160 + int64(len(e.scores))*48
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.maxEntries == 0 || e.size > s.maxBytes {
		return
	}
	if el, ok := s.entries[k]; ok {
		old := el.Value.(*cacheEntry)
		s.bytes += e.size - old.size
		el.Value = e
		s.lru.MoveToFront(el)
	} else {
		s.entries[k] = s.lru.PushFront(e)
		s.bytes += e.size
	}
	c.evictLocked(s)
}

func (c *decisionCache) evictLocked(s *cacheShard) {
	for s.lru.Len() > 0 && (s.lru.Len() > s.maxEntries || s.bytes > s.maxBytes) {
		el := s.lru.Back()
		e := el.Value.(*cacheEntry)
		s.lru.Remove(el)
		delete(s.entries, e.key)
		s.bytes -= e.size
		c.evicts.Add(1)
	}
}

// drop forgets every entry of the routers whose ids keep returns false
// for, after a reload replaced them.
func (c *decisionCache) drop(keep func(router uint64) bool) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for el := s.lru.Front(); el != nil; {
			next := el.Next()
			e := el.Value.(*cacheEntry)
			if !keep(e.key.router) {
				s.lru.Remove(el)
				delete(s.entries, e.key)
				s.bytes -= e.size
			}
			el = next
		}
		s.mu.Unlock()
	}
}

// CacheStats counts decision-cache lookups and evictions since start.
type CacheStats struct {
	Hits, Misses, Evictions uint64
	// Entries and Bytes are what the cache holds now.
	Entries int
	Bytes   int64
}

func (c *decisionCache) stats() CacheStats {
	st := CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Evictions: c.evicts.Load()}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Entries += s.lru.Len()
		st.Bytes += s.bytes
		s.mu.Unlock()
	}
	return st
}
