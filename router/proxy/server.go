// Package proxy is autorouter's OpenAI-compatible HTTP server on fasthttp:
// chat completions (streaming and not), completions, embeddings, models,
// the /route dry run, health and metrics. It is a thin adapter over
// router.Client: it decodes a request, calls the library and writes the
// answer. What it adds is what a public-facing server needs: connection
// limits and timeouts, bounded resources, client-disconnect detection,
// panic recovery and graceful shutdown.
package proxy

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/config"
	"github.com/autorouter/autorouter/router/manage"
	"github.com/autorouter/autorouter/router/openai"
	"github.com/autorouter/autorouter/router/upstream"
)

// Options tunes the server. Zero values mean the defaults.
type Options struct {
	// Logger receives one line per request, and the server's warnings.
	// nil discards them.
	Logger *slog.Logger
	// Limits are the connection, timeout and size limits
	// (general_settings); zero fields take their defaults.
	Limits config.Limits
	// OpenFiles is the process's open-file limit, which the default
	// MaxConnections is derived from; 0 when unknown.
	OpenFiles int
}

// Server is the proxy. Create it with New and start it with Serve; it
// answers health checks at once and API requests once SetClient has given
// it a router.Client (until then readiness and API requests get 503).
type Server struct {
	logger  *slog.Logger
	limits  config.Limits
	metrics *metrics
	client  atomic.Pointer[router.Client]
	manager atomic.Pointer[manage.Manager]
	ui      atomic.Pointer[uiBox]
	srv     *fasthttp.Server
	reqID   atomic.Uint64
	started time.Time
	gone    *goneWatcher
	// embedSlots bounds /v1/embeddings work on local models; embedQueue
	// counts requests waiting for a slot.
	embedSlots chan struct{}
	embedQueue atomic.Int64

	// streams are the responses still being written after their handler
	// returned (SSE relays and large bodies), for shutdown.
	streamsMu sync.Mutex
	streams   map[*reqState]struct{}
	streamsWG sync.WaitGroup
	listeners []*limitListener
	// reqs holds *reqState, reused across requests; copyBufs holds
	// *[]byte copy buffers. Both are taken and given back within one request.
	reqs     sync.Pool
	copyBufs sync.Pool
}

// New builds a server.
func New(opts Options) *Server {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	lim := opts.Limits.WithDefaults(opts.OpenFiles)
	s := &Server{logger: logger, limits: lim, started: time.Now(), gone: newGoneWatcher(),
		embedSlots: make(chan struct{}, lim.MaxConcurrentEmbeddings), streams: map[*reqState]struct{}{}}
	s.metrics = newMetrics(s.current, s.Client)
	s.copyBufs.New = func() any { b := make([]byte, 16<<10); return &b }
	s.srv = &fasthttp.Server{
		Handler:               s.handle,
		Name:                  "autorouter",
		NoDefaultServerHeader: true,
		MaxRequestBodySize:    lim.RequestBytes(),
		// The read buffer bounds the header block: a larger one gets 431.
		ReadBufferSize: lim.MaxHeaderBytes,
		// ReadTimeout bounds a new connection's silence and each request's
		// headers; the body gets its own deadline once they are in.
		ReadTimeout: lim.HeaderTimeout.D(),
		IdleTimeout: lim.IdleTimeout.D(),
		HeaderReceived: func(*fasthttp.RequestHeader) fasthttp.RequestConfig {
			return fasthttp.RequestConfig{ReadTimeout: lim.BodyTimeout.D()}
		},
		Concurrency:                  lim.MaxConnections + 64,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		SecureErrorLogMessage:        true,
		Logger:                       fasthttpLogger{logger},
		ErrorHandler:                 s.errorHandler,
	}
	return s
}

// UI is the admin web page: its static assets under /ui, and its JSON
// endpoints under /ui/api/ (which the server lets through only with the
// master key).
type UI interface {
	Handle(ctx *fasthttp.RequestCtx)
}

type uiBox struct{ ui UI }

// SetUI serves the admin web page at /ui.
func (s *Server) SetUI(u UI) { s.ui.Store(&uiBox{u}) }

// serveUI serves /ui before the server is ready too: the page itself
// tells the operator that the routers are loading.
func (s *Server) serveUI(ctx *fasthttp.RequestCtx, path string) bool {
	if path != "/ui" && !strings.HasPrefix(path, "/ui/") {
		return false
	}
	box := s.ui.Load()
	if box == nil {
		writeError(ctx, &apiError{status: 404, typ: "invalid_request_error", code: "not_found", msg: "the admin web page is not served by this server"})
		return true
	}
	if strings.HasPrefix(path, "/ui/api/") {
		snap := s.current()
		if snap == nil {
			writeError(ctx, &apiError{status: 503, typ: "service_unavailable", code: "loading", retryAfter: 1, msg: "autorouter is still loading; retry shortly"})
			return true
		}
		key := snap.MasterKey()
		snap.Release()
		if len(key) == 0 {
			writeError(ctx, &apiError{status: 403, typ: "permission_error", code: "management_off", msg: "the admin API is off: set general_settings.master_key"})
			return true
		}
		if !authorized(ctx, key) {
			unauthorized(ctx)
			return true
		}
	}
	box.ui.Handle(ctx)
	return true
}

// SetClient installs the routing and completion library and marks the
// server ready.
func (s *Server) SetClient(c *router.Client) error {
	if c == nil {
		return errors.New("proxy: SetClient(nil): a server needs a router.Client to be ready")
	}
	s.client.Store(c)
	return nil
}

// Client is the installed client, nil before SetClient.
func (s *Server) Client() *router.Client { return s.client.Load() }

// current is the client's snapshot, or nil before SetClient.
func (s *Server) current() *router.Snapshot {
	c := s.client.Load()
	if c == nil {
		return nil
	}
	return c.Acquire()
}

// Serve accepts connections on ln until Shutdown. The connection limits
// apply to ln.
func (s *Server) Serve(ln net.Listener) error {
	ll := newLimitListener(ln, s.limits.MaxConnections, s.limits.MaxConnectionsPerIP, s.limits.WriteTimeout.D(), s.logger,
		func(reason string) { s.metrics.rejected.WithLabelValues(reason).Inc() })
	s.streamsMu.Lock()
	s.listeners = append(s.listeners, ll)
	s.streamsMu.Unlock()
	return s.srv.Serve(ll)
}

// Handler exposes the request handler, for in-memory listeners in tests.
func (s *Server) Handler() fasthttp.RequestHandler { return s.handle }

// errShutdown ends the streams still open when the shutdown grace ends.
var errShutdown = errors.New("the server is shutting down")

// Shutdown stops accepting connections and lets requests and streams in
// flight finish until ctx ends. Shortly before that, streams still open
// get a final error event (code server_shutdown) and a log line each, so
// that no client is cut off silently.
func (s *Server) Shutdown(ctx context.Context) error {
	inner, cancel := ctx, context.CancelFunc(func() {})
	if dl, ok := ctx.Deadline(); ok {
		margin := min(time.Second, time.Until(dl)/4)
		inner, cancel = context.WithDeadline(ctx, dl.Add(-margin))
	}
	defer cancel()
	err := s.srv.ShutdownWithContext(inner)
	if err == nil {
		return nil
	}
	s.streamsMu.Lock()
	open := make([]*reqState, 0, len(s.streams))
	for rs := range s.streams {
		open = append(open, rs)
	}
	s.streamsMu.Unlock()
	for _, rs := range open {
		rs.cancel(errShutdown)
	}
	if len(open) > 0 {
		s.logger.Warn("shutdown grace ended; ending open streams with a server_shutdown event", "streams", len(open))
	}
	done := make(chan struct{})
	go func() { s.streamsWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return err
}

// handle serves one request; a panic becomes a 500 for this request alone.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	defer func() {
		if p := recover(); p != nil {
			s.logger.Error("panic serving a request; answered 500", "path", string(ctx.Path()), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			ctx.Response.Reset()
			writeError(ctx, &apiError{status: 500, typ: "internal_error", msg: "internal error (logged with a stack trace)"})
		}
	}()
	path := ctx.Path()
	switch string(path) {
	case "/health/liveliness", "/health/liveness":
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`"I'm alive!"`)
		return
	case "/health/readiness":
		ctx.SetContentType("application/json")
		if s.client.Load() == nil {
			ctx.SetStatusCode(503)
			ctx.SetBodyString(`{"status":"loading","detail":"routers are still loading"}`)
			return
		}
		ctx.SetBodyString(`{"status":"healthy"}`)
		return
	}
	if s.serveUI(ctx, string(path)) {
		return
	}
	// A browser opening the server's address lands on the admin page, as
	// on LiteLLM's proxy; API clients never GET "/".
	if string(path) == "/" && ctx.IsGet() && s.ui.Load() != nil && bytes.Contains(ctx.Request.Header.Peek("Accept"), []byte("text/html")) {
		ctx.Redirect("/ui/", fasthttp.StatusFound)
		return
	}
	snap := s.current()
	if snap == nil {
		writeError(ctx, &apiError{status: 503, typ: "service_unavailable", code: "loading", retryAfter: 1,
			msg: "autorouter is still loading its models and routers; retry shortly (see /health/readiness)"})
		return
	}
	if string(path) == "/metrics" {
		require := snap.Config().GeneralSettings.RequireAuthForMetricsEndpoint
		if require && !authorized(ctx, snap.MasterKey()) {
			snap.Release()
			unauthorized(ctx)
			return
		}
		snap.Release()
		s.metrics.handler(ctx)
		return
	}
	if !authorized(ctx, snap.MasterKey()) {
		snap.Release()
		unauthorized(ctx)
		return
	}
	method := ctx.Method()
	trimmed := strings.TrimPrefix(string(path), "/v1")
	switch {
	case trimmed == "/chat/completions" && string(method) == "POST":
		s.serveAPI(ctx, snap, "/v1/chat/completions", upstream.Chat)
	case trimmed == "/completions" && string(method) == "POST":
		s.serveAPI(ctx, snap, "/v1/completions", upstream.Completions)
	case trimmed == "/responses" && string(method) == "POST":
		s.serveAPI(ctx, snap, "/v1/responses", upstream.Responses)
	case trimmed == "/messages" && string(method) == "POST":
		s.serveAPI(ctx, snap, "/v1/messages", upstream.Messages)
	case trimmed == "/embeddings" && string(method) == "POST":
		s.embeddings(ctx, snap)
	case trimmed == "/models" && string(method) == "GET":
		s.models(ctx, snap)
	case string(path) == "/route" && string(method) == "POST":
		s.route(ctx, snap)
	case isManagement(string(path)):
		s.manage(ctx, snap, string(path))
	default:
		snap.Release()
		writeError(ctx, &apiError{status: 404, typ: "invalid_request_error", code: "not_found",
			msg: fmt.Sprintf("no endpoint %s %s; see /v1/chat/completions, /v1/responses, /v1/messages, /v1/completions, /v1/embeddings, /v1/models, /route", method, path)})
	}
}

func unauthorized(ctx *fasthttp.RequestCtx) {
	writeError(ctx, &apiError{status: 401, typ: "authentication_error", code: "invalid_api_key",
		msg: "missing or invalid API key: send Authorization: Bearer <master_key> (or x-api-key)"})
}

// authorized checks the client's key in constant time when a master key is
// set: Authorization: Bearer <key>, or x-api-key as Anthropic's clients send.
func authorized(ctx *fasthttp.RequestCtx, key []byte) bool {
	if len(key) == 0 {
		return true
	}
	got := ctx.Request.Header.Peek("Authorization")
	const prefix = "Bearer "
	if len(got) >= len(prefix) && strings.EqualFold(string(got[:len(prefix)]), prefix) {
		got = got[len(prefix):]
	} else {
		got = ctx.Request.Header.Peek("x-api-key")
	}
	return len(got) > 0 && subtle.ConstantTimeCompare(got, key) == 1
}

func (s *Server) models(ctx *fasthttp.RequestCtx, snap *router.Snapshot) {
	defer snap.Release()
	list := openai.ModelList{Object: "list", Data: []openai.Model{}}
	for _, name := range snap.Config().ModelNames() {
		list.Data = append(list.Data, openai.Model{ID: name, Object: "model", Created: s.started.Unix(), OwnedBy: "autorouter"})
	}
	writeJSON(ctx, 200, list)
}

// errorHandler answers requests fasthttp could not read. It never echoes
// the request: a malformed line may hold an Authorization header.
func (s *Server) errorHandler(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeError(ctx, &apiError{status: 413, typ: "invalid_request_error", code: "request_too_large",
			msg: fmt.Sprintf("request body exceeds the %d-byte limit (general_settings.max_request_size_mb, serve --max-body)", s.limits.RequestBytes())})
	case errors.As(err, &small):
		writeError(ctx, &apiError{status: 431, typ: "invalid_request_error", code: "headers_too_large",
			msg: fmt.Sprintf("request headers exceed the %d-byte limit (general_settings.max_header_bytes)", s.limits.MaxHeaderBytes)})
	case errors.Is(err, fasthttp.ErrTimeout) || (errors.As(err, &ne) && ne.Timeout()):
		writeError(ctx, &apiError{status: 408, typ: "invalid_request_error", code: "request_timeout",
			msg: "the request was not received in time (general_settings.header_timeout / body_timeout)"})
	default:
		writeError(ctx, &apiError{status: 400, typ: "invalid_request_error", code: "malformed_request",
			msg: "malformed HTTP request"})
	}
}

// fasthttpLogger sends fasthttp's own messages to slog at debug level,
// with only their format: the arguments may hold request bytes.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("fasthttp: " + format)
}
