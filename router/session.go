package router

import (
	"container/list"
	"context"
	"encoding/json"
	"sync"
	"time"
)

// SessionStore shares session decisions between replicas (Redis, in the
// store package). Get and Set must be quick; a Set may finish after it
// returns.
type SessionStore interface {
	Get(ctx context.Context, key string) ([]byte, bool)
	Set(ctx context.Context, key string, value []byte, ttl time.Duration)
}

type sessionCtxKey struct{}

// WithSession marks ctx's request as part of the session key: with
// session affinity on (router_settings.session_affinity) its routing
// decision is the session's first one.
func WithSession(ctx context.Context, key string) context.Context {
	if key == "" {
		return ctx
	}
	return context.WithValue(ctx, sessionCtxKey{}, key)
}

// sessionOf returns ctx's session key.
func sessionOf(ctx context.Context) string {
	s, _ := ctx.Value(sessionCtxKey{}).(string)
	return s
}

// Session defaults; see config.RouterSettings.
const (
	DefaultSessionTTL  = 30 * time.Minute
	DefaultMaxSessions = 100_000
	maxSessionKeyBytes = 256
)

// sessions keeps each session's first decision per router version: an
// LRU bounded by count, whose entries expire after the TTL, optionally
// backed by a SessionStore shared by replicas.
type sessions struct {
	mu     sync.Mutex
	ttl    time.Duration
	max    int
	byKey  map[string]*list.Element
	lru    list.List // values *sessionEntry, front most recent
	shared SessionStore
}

type sessionEntry struct {
	key     string
	dec     storedDecision
	expires time.Time
}

// storedDecision is a decision as sessions keep it (and share it).
type storedDecision struct {
	Model    string       `json:"model"`
	Route    string       `json:"route"`
	Score    float32      `json:"score"`
	Fallback bool         `json:"fallback"`
	Reason   string       `json:"reason,omitempty"`
	Scores   []RouteScore `json:"scores,omitempty"`
}

func newSessions() *sessions { return &sessions{byKey: map[string]*list.Element{}} }

func (s *sessions) configure(ttl time.Duration, max int, shared SessionStore) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ttl, s.max, s.shared = ttl, max, shared
	s.trimLocked()
}

// sessionKey is the key of session key's decisions on router r (version
// included: a changed router starts the session afresh).
func sessionKey(r *autoRouter, key string) string {
	return r.fingerprint[:16] + ":" + r.name + ":" + key
}

// get returns the session's kept decision on r, if any.
func (s *sessions) get(ctx context.Context, r *autoRouter, key string) (Decision, bool) {
	k := sessionKey(r, key)
	now := time.Now()
	s.mu.Lock()
	if el, ok := s.byKey[k]; ok {
		e := el.Value.(*sessionEntry)
		if now.Before(e.expires) {
			s.lru.MoveToFront(el)
			d := e.dec.decision(r.name)
			s.mu.Unlock()
			return d, true
		}
		s.removeLocked(el)
	}
	shared, ttl := s.shared, s.ttl
	s.mu.Unlock()
	if shared == nil {
		return Decision{}, false
	}
	raw, ok := shared.Get(ctx, k)
	if !ok {
		return Decision{}, false
	}
	var sd storedDecision
	if json.Unmarshal(raw, &sd) != nil {
		return Decision{}, false
	}
	s.remember(k, sd, now.Add(ttl))
	return sd.decision(r.name), true
}

// put keeps d as the session's decision on r.
func (s *sessions) put(ctx context.Context, r *autoRouter, key string, d *Decision) {
	if d.Err != nil {
		return // an embedding failure is not the session's choice
	}
	k := sessionKey(r, key)
	sd := storedDecision{Model: d.Model, Route: d.Route, Score: d.Score, Fallback: d.Fallback, Reason: d.Reason,
		Scores: append([]RouteScore(nil), d.Scores...)}
	s.mu.Lock()
	ttl, shared := s.ttl, s.shared
	s.mu.Unlock()
	s.remember(k, sd, time.Now().Add(ttl))
	if shared != nil {
		if raw, err := json.Marshal(sd); err == nil {
			shared.Set(ctx, k, raw, ttl)
		}
	}
}

func (s *sessions) remember(k string, sd storedDecision, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.byKey[k]; ok {
		e := el.Value.(*sessionEntry)
		e.dec, e.expires = sd, expires
		s.lru.MoveToFront(el)
		return
	}
	s.byKey[k] = s.lru.PushFront(&sessionEntry{key: k, dec: sd, expires: expires})
	s.trimLocked()
}

func (s *sessions) trimLocked() {
	for s.lru.Len() > 0 && s.lru.Len() > s.max {
		s.removeLocked(s.lru.Back())
	}
	// Expired entries at the back go too; the rest expire when read.
	now := time.Now()
	for el := s.lru.Back(); el != nil && !now.Before(el.Value.(*sessionEntry).expires); el = s.lru.Back() {
		s.removeLocked(el)
	}
}

func (s *sessions) removeLocked(el *list.Element) {
	delete(s.byKey, el.Value.(*sessionEntry).key)
	s.lru.Remove(el)
}

func (s *sessions) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}

func (sd storedDecision) decision(router string) Decision {
	return Decision{Router: router, Model: sd.Model, Route: sd.Route, Score: sd.Score, Fallback: sd.Fallback,
		Reason: sd.Reason, Scores: append([]RouteScore(nil), sd.Scores...), Session: true}
}
