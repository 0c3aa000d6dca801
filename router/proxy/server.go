// Package proxy is autorouter's OpenAI-compatible HTTP server on fasthttp:
// chat completions (streaming and not), completions, embeddings, models,
// the /route dry run, health and metrics. Requests for an auto router are
// routed first; every request then goes to a deployment of its model group,
// with retries, cooldowns and fallbacks.
package proxy

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/autorouter/autorouter/embed"
	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/openai"
)

// Router is what the proxy needs from the routing engine.
type Router interface {
	Route(ctx context.Context, name string, msgs []openai.Message) (router.Decision, error)
	IsRouter(name string) bool
}

// EncoderSource serves /v1/embeddings for local models in-process.
type EncoderSource interface {
	Encoder(modelName string) (embed.Encoder, error)
}

// Options tunes the server. Zero values mean the defaults.
type Options struct {
	// Logger receives one line per request. nil discards them.
	Logger *slog.Logger
	// MaxBodyBytes bounds request bodies; larger ones get 413. Default 10 MiB.
	MaxBodyBytes int
}

// DefaultMaxBodyBytes is the default request body limit.
const DefaultMaxBodyBytes = 10 << 20

// Server is the proxy. Create it with New, start it with Serve, and call
// SetRouter once the routers are loaded: until then readiness is 503 and
// auto-router requests get 503, while plain models are already served.
type Server struct {
	logger    *slog.Logger
	metrics   *metrics
	masterKey []byte
	cfg       atomic.Pointer[router.Config]
	ups       atomic.Pointer[upstreams]
	rt        atomic.Pointer[routerBox]
	srv       *fasthttp.Server
	reqID     atomic.Uint64
	started   time.Time
}

type routerBox struct {
	r   Router
	enc EncoderSource
}

// New builds a server for cfg.
func New(cfg *router.Config, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	s := &Server{logger: opts.Logger, metrics: newMetrics(), started: time.Now()}
	if err := s.SetConfig(cfg); err != nil {
		return nil, err
	}
	s.srv = &fasthttp.Server{
		Handler:                      s.handle,
		Name:                         "autorouter",
		MaxRequestBodySize:           opts.MaxBodyBytes,
		ReadTimeout:                  5 * time.Minute,
		IdleTimeout:                  2 * time.Minute,
		NoDefaultServerHeader:        true,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			if errors.Is(err, fasthttp.ErrBodyTooLarge) {
				writeError(ctx, &apiError{status: 413, typ: "invalid_request_error",
					msg: fmt.Sprintf("request body exceeds the %d-byte limit (serve --max-body)", opts.MaxBodyBytes)})
				return
			}
			writeError(ctx, badRequest("", "cannot parse request: %v", err))
		},
	}
	return s, nil
}

// SetConfig swaps in a new config's deployments and master key, as after a
// reload. Requests already under way keep the deployments they started with.
func (s *Server) SetConfig(cfg *router.Config) error {
	ups, err := newUpstreams(cfg)
	if err != nil {
		return err
	}
	s.cfg.Store(cfg)
	s.ups.Store(ups)
	s.masterKey = []byte(cfg.GeneralSettings.MasterKey.Value())
	return nil
}

// SetRouter installs the routing engine and marks the server ready.
func (s *Server) SetRouter(r Router, enc EncoderSource) { s.rt.Store(&routerBox{r: r, enc: enc}) }

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// Shutdown stops accepting connections and waits for in-flight requests and
// streams to finish, or for ctx to end.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.ShutdownWithContext(ctx) }

// Handler exposes the request handler, for in-memory listeners in tests.
func (s *Server) Handler() fasthttp.RequestHandler { return s.handle }

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	switch path {
	case "/health/liveliness", "/health/liveness":
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`"I'm alive!"`)
		return
	case "/health/readiness":
		ctx.SetContentType("application/json")
		if s.rt.Load() == nil {
			ctx.SetStatusCode(503)
			ctx.SetBodyString(`{"status":"loading","detail":"routers are still loading"}`)
			return
		}
		ctx.SetBodyString(`{"status":"healthy"}`)
		return
	case "/metrics":
		ctx.SetContentType("text/plain; version=0.0.4")
		s.metrics.write(ctx)
		return
	}
	if !s.authorized(ctx) {
		writeError(ctx, &apiError{status: 401, typ: "authentication_error", code: "invalid_api_key",
			msg: "missing or invalid API key: send Authorization: Bearer <master_key>"})
		return
	}
	s.metrics.inFlight.Add(1)
	defer s.metrics.inFlight.Add(-1)
	trimmed := strings.TrimPrefix(path, "/v1")
	method := string(ctx.Method())
	switch {
	case trimmed == "/models" && method == "GET":
		s.models(ctx)
	case trimmed == "/chat/completions" && method == "POST":
		s.completion(ctx, "/chat/completions", true)
	case trimmed == "/completions" && method == "POST":
		s.completion(ctx, "/completions", false)
	case trimmed == "/embeddings" && method == "POST":
		s.embeddings(ctx)
	case path == "/route" && method == "POST":
		s.route(ctx)
	default:
		writeError(ctx, &apiError{status: 404, typ: "invalid_request_error", code: "not_found",
			msg: fmt.Sprintf("no endpoint %s %s; see /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models, /route", method, path)})
	}
}

// authorized checks the bearer token in constant time when a master key is set.
func (s *Server) authorized(ctx *fasthttp.RequestCtx) bool {
	if len(s.masterKey) == 0 {
		return true
	}
	auth := ctx.Request.Header.Peek("Authorization")
	const prefix = "Bearer "
	if len(auth) < len(prefix) || !strings.EqualFold(string(auth[:len(prefix)]), prefix) {
		return false
	}
	return subtle.ConstantTimeCompare(auth[len(prefix):], s.masterKey) == 1
}

func (s *Server) models(ctx *fasthttp.RequestCtx) {
	cfg := s.cfg.Load()
	seen := map[string]bool{}
	list := openai.ModelList{Object: "list", Data: []openai.Model{}}
	for _, d := range cfg.ModelList {
		if seen[d.ModelName] {
			continue
		}
		seen[d.ModelName] = true
		list.Data = append(list.Data, openai.Model{ID: d.ModelName, Object: "model", Created: s.started.Unix(), OwnedBy: "autorouter"})
	}
	writeJSON(ctx, 200, list)
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, err)
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// decide parses a chat request and routes it when its model is an auto
// router. It returns the model group to send to and the decision (nil for a
// plain model).
func (s *Server) decide(ctx *fasthttp.RequestCtx, req *openai.ChatRequest, chat bool) (string, *router.Decision, error) {
	if err := json.Unmarshal(ctx.PostBody(), req); err != nil {
		return "", nil, badRequest("", "request body is not valid JSON for this endpoint: %v", err)
	}
	if req.Model == "" {
		return "", nil, badRequest("model", "missing required field: model")
	}
	if chat && len(req.Messages) == 0 {
		return "", nil, badRequest("messages", "missing required field: messages (a non-empty array)")
	}
	cfg := s.cfg.Load()
	group := cfg.Group(req.Model)
	if len(group) == 0 {
		return "", nil, s.unknownModel(req.Model)
	}
	if !group[0].IsAutoRouter() {
		return req.Model, nil, nil
	}
	box := s.rt.Load()
	if box == nil {
		return "", nil, &apiError{status: 503, typ: "service_unavailable", msg: "auto routers are still loading; retry shortly (see /health/readiness)"}
	}
	d, err := box.r.Route(ctx, req.Model, req.Messages)
	if err != nil {
		return "", nil, s.unknownModel(req.Model)
	}
	s.metrics.observe("autorouter_route_embed_seconds", d.EmbedTime)
	s.metrics.observe("autorouter_route_score_seconds", d.ScoreTime)
	if d.Fallback {
		s.metrics.fallback(d.Router, d.Reason)
	}
	return d.Model, &d, nil
}

func (s *Server) unknownModel(name string) error {
	cfg := s.cfg.Load()
	seen := map[string]bool{}
	var names []string
	for _, d := range cfg.ModelList {
		if !seen[d.ModelName] {
			seen[d.ModelName] = true
			names = append(names, d.ModelName)
		}
	}
	sort.Strings(names)
	return &apiError{status: 404, typ: "invalid_request_error", param: "model", code: "model_not_found",
		msg: fmt.Sprintf("model %q does not exist; valid models: %s", name, strings.Join(names, ", "))}
}

// completion serves chat and text completions.
func (s *Server) completion(ctx *fasthttp.RequestCtx, path string, chat bool) {
	start := time.Now()
	id := s.reqID.Add(1)
	var req openai.ChatRequest
	target, dec, err := s.decide(ctx, &req, chat)
	if err != nil {
		s.finish(ctx, id, start, req.Model, dec, "", err)
		return
	}
	dep, err := s.forward(ctx, start, target, path, &req, dec, id)
	s.finish(ctx, id, start, target, dec, dep, err)
}

// finish writes an error, if any, and logs and counts the request. Streams
// that started log from their writer instead.
func (s *Server) finish(ctx *fasthttp.RequestCtx, id uint64, start time.Time, model string, dec *router.Decision, dep string, err error) {
	if err != nil {
		writeError(ctx, err)
	}
	if err == nil && ctx.IsBodyStream() {
		return
	}
	s.logRequest(id, string(ctx.Path()), model, dec, dep, ctx.Response.StatusCode(), time.Since(start), err)
}

func (s *Server) logRequest(id uint64, path, model string, dec *router.Decision, dep string, status int, took time.Duration, err error) {
	route, score := "", float32(0)
	if dec != nil {
		route, score = dec.Route, dec.Score
		if dec.Fallback {
			route = "(default:" + dec.Reason + ")"
		}
	}
	s.metrics.request(path, model, route, status)
	s.metrics.observe("autorouter_request_seconds", took)
	attrs := []any{"id", id, "path", path, "model", model, "deployment", dep, "route", route, "score", score,
		"status", status, "ms", float64(took.Microseconds()) / 1000}
	if dec != nil {
		attrs = append(attrs, "embed_ms", float64(dec.EmbedTime.Microseconds())/1000)
	}
	if err != nil {
		attrs = append(attrs, "err", err.Error())
	}
	s.logger.Info("request", attrs...)
}

// setRoutingHeaders tells the client what routing decided.
func setRoutingHeaders(h *fasthttp.ResponseHeader, dec *router.Decision, dep *deployment) {
	if dec != nil {
		route := dec.Route
		if dec.Fallback {
			route = "default"
		}
		h.Set("x-autorouter-route", route)
		h.Set("x-autorouter-score", strconv.FormatFloat(float64(dec.Score), 'f', 4, 32))
	}
	h.Set("x-autorouter-model", dep.group)
	h.Set("x-litellm-model-id", dep.id)
}

func (s *Server) route(ctx *fasthttp.RequestCtx) {
	var req openai.ChatRequest
	start := time.Now()
	id := s.reqID.Add(1)
	target, dec, err := s.decide(ctx, &req, true)
	if err == nil && dec == nil {
		err = badRequest("model", "model %q is not an auto router; /route only dry-runs auto routers", req.Model)
	}
	if err == nil {
		writeJSON(ctx, 200, dec)
	}
	s.finish(ctx, id, start, target, dec, "", err)
}

// fasthttpLogger sends fasthttp's own messages (connection errors, mostly
// already answered to the client) to slog at debug level.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("fasthttp: " + fmt.Sprintf(format, args...))
}
