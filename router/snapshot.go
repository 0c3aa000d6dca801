package router

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/autorouter/autorouter/embed"
	"github.com/autorouter/autorouter/router/config"
	"github.com/autorouter/autorouter/router/openai"
	"github.com/autorouter/autorouter/router/translate"
	"github.com/autorouter/autorouter/router/upstream"
)

// Snapshot is one generation of a Client: everything one config load
// produced (the config, its deployments and their policy, its routers and
// encoders), immutable. A request takes one with Client.Acquire and uses
// only it, so it sees one consistent config even while a reload swaps in
// the next; Release gives it back, and a replaced generation's encoders
// close when its last request has released it.
type Snapshot struct {
	seq       uint64
	cfg       *config.Config
	pool      *upstream.Pool
	routers   map[string]*autoRouter
	encoders  map[string]*encoderRef // embedding model_name -> encoder
	refs      []*encoderRef          // each encoder once
	masterKey []byte
	client    *Client
	lanes     *lanes
	cacheOn   bool // the decision cache is on
	affinity  bool // session affinity is on
	// users counts the Client's own reference (while current) and every
	// request holding the snapshot; the last Release frees its encoders.
	users atomic.Int64
}

// Errors for errors.Is at an API's edge.
var (
	// ErrUnknownModel is a model name that is not in model_list.
	ErrUnknownModel = errors.New("router: unknown model")
	// ErrUnknownRouter is a model name that is not an auto router.
	ErrUnknownRouter = errors.New("router: not an auto router")
	// ErrWrongAPI is a model that cannot answer this API (an embedding
	// model asked for a chat completion, say).
	ErrWrongAPI = errors.New("router: model cannot answer this API")
)

// Seq numbers the Client's generations from 1.
func (s *Snapshot) Seq() uint64 { return s.seq }

// Config is the snapshot's config; read it only.
func (s *Snapshot) Config() *config.Config { return s.cfg }

// Pool is the snapshot's upstream deployments.
func (s *Snapshot) Pool() *upstream.Pool { return s.pool }

// MasterKey is general_settings.master_key's bytes, nil when none is set.
// The slice belongs to the snapshot.
func (s *Snapshot) MasterKey() []byte { return s.masterKey }

// IsRouter reports whether name is an auto router's model_name.
func (s *Snapshot) IsRouter(name string) bool { return s.routers[name] != nil }

// Routers lists the auto routers' names, sorted.
func (s *Snapshot) Routers() []string {
	names := make([]string, 0, len(s.routers))
	for n := range s.routers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Release gives the snapshot back. Every Acquire needs exactly one.
func (s *Snapshot) Release() {
	if s.users.Add(-1) == 0 {
		s.free()
	}
}

// free releases the snapshot's encoders once nothing uses it.
func (s *Snapshot) free() {
	for _, r := range s.refs {
		s.client.encoders.release(r)
	}
	s.refs = nil
}

// Route decides where a chat request for the auto router name goes. It
// fails only for a name that is not an auto router; embedding failures fall
// back to the default model, with the cause in Decision.Err.
func (s *Snapshot) Route(ctx context.Context, name string, msgs []openai.Message) (Decision, error) {
	r := s.routers[name]
	if r == nil {
		return Decision{}, fmt.Errorf("%w: %q", ErrUnknownRouter, name)
	}
	text, ok := RoutingText(msgs, r.window, r.maxChars)
	if !ok {
		return r.fallback(ReasonNoUserMessage, "", nil), nil
	}
	return s.decide(ctx, r, text, sessionOf(ctx)), nil
}

// RouteText decides for a bare prompt, as if it were the only user message.
func (s *Snapshot) RouteText(ctx context.Context, name, text string) (Decision, error) {
	r := s.routers[name]
	if r == nil {
		return Decision{}, fmt.Errorf("%w: %q", ErrUnknownRouter, name)
	}
	return s.decide(ctx, r, truncateRunes(text, maxCharsOr(r.maxChars), false), sessionOf(ctx)), nil
}

// RouteBody decides for a raw request body of api: chat's messages, or
// the prompt of a text completion.
func (s *Snapshot) RouteBody(ctx context.Context, api upstream.API, name string, body *openai.Body) (Decision, error) {
	r := s.routers[name]
	if r == nil {
		return Decision{}, fmt.Errorf("%w: %q", ErrUnknownRouter, name)
	}
	text, ok := routingTextOf(api, body, r.window, r.maxChars)
	if !ok {
		return r.fallback(ReasonNoUserMessage, "", nil), nil
	}
	return s.decide(ctx, r, text, sessionOfBody(ctx, body)), nil
}

// MaxNearest bounds the k of Nearest.
const MaxNearest = 100

// Nearest returns the k utterances of the auto router name most similar to
// text (as Decision.Text holds it), highest first: what a decision was
// closest to. It embeds text once more, in the same lanes as routing; k is
// capped at MaxNearest.
func (s *Snapshot) Nearest(ctx context.Context, name, text string, k int) ([]Neighbor, error) {
	r := s.routers[name]
	if r == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownRouter, name)
	}
	if text == "" || k <= 0 {
		return nil, nil
	}
	lane, err := s.lanes.acquire(ctx, len(text), r.batching)
	if err != nil {
		return nil, fmt.Errorf("waiting to embed: %w", err)
	}
	defer release(lane)
	return r.nearest(ctx, text, min(k, MaxNearest))
}

// decide routes text on r: the session's kept decision when session
// affinity is on and the request names a session, else a cached decision
// for the same text, else a fresh one (in its lane).
func (s *Snapshot) decide(ctx context.Context, r *autoRouter, text, session string) Decision {
	c := s.client
	if s.affinity && session != "" {
		if d, ok := c.sessions.get(ctx, r, session); ok {
			d.Text = text
			return d
		}
	}
	d := s.decideCached(ctx, r, text)
	if s.affinity && session != "" {
		c.sessions.put(ctx, r, session, &d)
	}
	return d
}

func (s *Snapshot) decideCached(ctx context.Context, r *autoRouter, text string) Decision {
	c := s.client
	t0 := time.Now()
	if s.cacheOn && text != "" {
		if d, ok := c.cache.get(r, text); ok {
			d.ScoreTime = time.Since(t0)
			return d
		}
	}
	lane, err := s.lanes.acquire(ctx, len(text), r.batching)
	if err != nil {
		return r.fallback(ReasonEmbedError, text, err)
	}
	d := r.decide(ctx, text, c.logger)
	release(lane)
	if s.cacheOn && text != "" {
		c.cache.put(r, text, &d)
	}
	return d
}

// sessionOfBody is the request's session key: set on ctx (the
// x-autorouter-session header, or WithSession), else the body's
// metadata.session_id.
func sessionOfBody(ctx context.Context, body *openai.Body) string {
	if k := sessionOf(ctx); k != "" {
		return k
	}
	md := body.Field("metadata")
	if len(md) == 0 || md[0] != '{' {
		return ""
	}
	for k, v := range openai.Members(md) {
		if string(k) == "session_id" && len(v) > 1 && v[0] == '"' && len(v) <= maxSessionKeyBytes+2 {
			return openai.Unquote(v)
		}
	}
	return ""
}

// routingTextOf extracts the text an API's request is routed on.
func routingTextOf(api upstream.API, body *openai.Body, window, maxChars int) (string, bool) {
	switch api {
	case upstream.Responses:
		text, ok := translate.ResponsesRoutingText(body.Field("input"))
		return truncateRunes(text, maxCharsOr(maxChars), false), ok
	case upstream.Messages:
		text, ok := translate.MessagesRoutingText(body.Field("messages"))
		return truncateRunes(text, maxCharsOr(maxChars), false), ok
	case upstream.Completions:
		p := body.Field("prompt")
		if len(p) == 0 || p[0] != '"' {
			return "", false
		}
		return truncateRunes(openai.Unquote(p), maxCharsOr(maxChars), false), true
	}
	return bodyRoutingText(body, window, maxChars)
}

func maxCharsOr(n int) int {
	if n <= 0 {
		return DefaultMaxTextChars
	}
	return n
}

// Call sends one API request: it routes the body when its model is an auto
// router, then sends it to the chosen model group's deployments with
// retries, cooldowns and fallbacks. The decision is the zero Decision
// (Router "") for a plain model. The body must stay unchanged until Call
// returns; the caller closes the response.
func (s *Snapshot) Call(ctx context.Context, api upstream.API, body *openai.Body) (*upstream.Response, Decision, error) {
	target := body.Model
	var dec Decision
	if r := s.routers[target]; r != nil {
		text, ok := routingTextOf(api, body, r.window, r.maxChars)
		if ok {
			dec = s.decide(ctx, r, text, sessionOfBody(ctx, body))
		} else {
			dec = r.fallback(ReasonNoUserMessage, "", nil)
		}
		target = dec.Model
	} else if !s.pool.Has(target) {
		return nil, dec, s.modelError(target)
	}
	resp, err := s.pool.Do(ctx, target, &upstream.Request{API: api, Stream: body.Stream, Body: body, Raw: body.Raw(), Model: body.Model})
	return resp, dec, err
}

// modelError says why name cannot be sent a request.
func (s *Snapshot) modelError(name string) error {
	if g := s.cfg.Group(name); len(g) > 0 {
		return fmt.Errorf("%w: model %q is a %s model; send it %s", ErrWrongAPI, name, g[0].Params.Provider(), usesOf(g[0]))
	}
	return fmt.Errorf("%w: model %q does not exist; valid models: %s", ErrUnknownModel, name, strings.Join(s.ModelNames(), ", "))
}

func usesOf(d *config.Deployment) string {
	if d.Params.Provider() == config.ProviderLocal {
		return "embeddings requests (/v1/embeddings)"
	}
	return "chat requests"
}

// ModelNames lists every model_name, sorted.
func (s *Snapshot) ModelNames() []string {
	names := append([]string(nil), s.cfg.ModelNames()...)
	sort.Strings(names)
	return names
}

// Encoder returns the in-process encoder of a local embedding model, for
// serving /v1/embeddings. It belongs to the snapshot: use it only while the
// snapshot is held.
func (s *Snapshot) Encoder(model string) (embed.Encoder, error) {
	if r := s.encoders[model]; r != nil {
		return r.enc, nil
	}
	if len(s.cfg.Group(model)) == 0 {
		return nil, s.modelError(model)
	}
	return nil, fmt.Errorf("%w: model %q is not a local embedding model", ErrWrongAPI, model)
}

// IsLocal reports whether model is an in-process embedding model.
func (s *Snapshot) IsLocal(model string) bool {
	g := s.cfg.Group(model)
	return len(g) > 0 && g[0].Params.Provider() == config.ProviderLocal
}
