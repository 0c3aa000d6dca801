// Package ui is autorouter's admin web page, served at /ui: the model list,
// LiteLLM's "Add Model > Auto Router" form (add, edit and delete stored auto
// routers), a routing playground, threshold fitting on labelled prompts,
// metrics at a glance and the progress of utterance embedding.
//
// The page is plain HTML, CSS and JavaScript modules written by hand and
// embedded in the binary: no bundler, no CDN, nothing fetched at run time.
// It talks to the public API (/model/*, /route, /v1/*, /metrics) with the
// master key, and to the few JSON endpoints under /ui/api/ that this
// package adds for what the public API lacks. The proxy lets /ui/api/*
// through only with the master key; this package does no auth of its own.
package ui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"log/slog"
	"mime"
	"path"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/openai"
)

//go:embed assets
var assetsFS embed.FS

// Options are what the page's endpoints need.
type Options struct {
	// Client returns the current router.Client; it returns nil (or Client
	// is nil) while the routers are loading, and the endpoints that need
	// it answer 503 until then.
	Client func() *router.Client
	// Progress tracks utterance embedding for /ui/api/progress; nil serves
	// an empty list.
	Progress *Progress
	// Logger receives the page's errors. nil discards them.
	Logger *slog.Logger
}

// Handler serves the page and its JSON endpoints. Create it with New.
type Handler struct {
	opts   Options
	logger *slog.Logger
	assets map[string]asset
	// evalSlot lets one evaluation run at a time: one can embed 20,000
	// prompts, and two would halve each other's speed for nothing.
	evalSlot chan struct{}
}

// asset is one embedded file, read once at New.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// New builds the handler. The embedded assets are read once, here.
func New(o Options) *Handler {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{opts: o, logger: logger, assets: map[string]asset{}, evalSlot: make(chan struct{}, 1)}
	// The embedded tree is fixed at build time, so a walk error cannot
	// happen at run time; a missing file would simply be a 404.
	_ = fs.WalkDir(assetsFS, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assetsFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) {
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		case ".html":
			ct = "text/html; charset=utf-8"
		case ".svg":
			ct = "image/svg+xml"
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		h.assets[strings.TrimPrefix(p, "assets/")] = asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	return h
}

// csp keeps the page to its own origin: no inline script, no third-party
// anything, no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// Handle serves /ui and /ui/ (the page), /ui/assets/* (its files) and
// /ui/api/* (its JSON endpoints).
func (h *Handler) Handle(ctx *fasthttp.RequestCtx) {
	p := string(ctx.Path())
	switch {
	case strings.HasPrefix(p, "/ui/api/"):
		h.api(ctx, strings.TrimPrefix(p, "/ui/api/"))
	case p == "/ui" || p == "/ui/" || p == "/ui/index.html":
		h.serveAsset(ctx, "index.html")
	case strings.HasPrefix(p, "/ui/assets/"):
		h.serveAsset(ctx, strings.TrimPrefix(p, "/ui/assets/"))
	default:
		ctx.Response.Header.Set("Cache-Control", "no-store")
		writeError(ctx, 404, "not_found", "", "no such page; the admin page is at /ui")
	}
}

func (h *Handler) serveAsset(ctx *fasthttp.RequestCtx, name string) {
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		writeError(ctx, 405, "method_not_allowed", "", "the admin page's files are read with GET")
		return
	}
	a, ok := h.assets[name]
	if !ok || name == "" {
		writeError(ctx, 404, "not_found", "", "no such file under /ui/assets/")
		return
	}
	hd := &ctx.Response.Header
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	// Revalidate every time: an upgraded binary serves new files at once,
	// and an unchanged file costs a 304.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", a.etag)
	if string(ctx.Request.Header.Peek("If-None-Match")) == a.etag {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	ctx.SetContentType(a.contentType)
	ctx.SetBody(a.body)
}

// api dispatches the JSON endpoints under /ui/api/.
func (h *Handler) api(ctx *fasthttp.RequestCtx, name string) {
	ctx.Response.Header.Set("Cache-Control", "no-store")
	switch name {
	case "progress":
		if !ctx.IsGet() {
			writeError(ctx, 405, "method_not_allowed", "", "use GET /ui/api/progress")
			return
		}
		writeJSON(ctx, 200, map[string]any{"data": h.opts.Progress.entries()})
	case "info":
		if !ctx.IsGet() {
			writeError(ctx, 405, "method_not_allowed", "", "use GET /ui/api/info")
			return
		}
		h.info(ctx)
	case "eval":
		if !ctx.IsPost() {
			writeError(ctx, 405, "method_not_allowed", "", "use POST /ui/api/eval")
			return
		}
		h.eval(ctx)
	default:
		writeError(ctx, 404, "not_found", "", "no such endpoint; have GET /ui/api/info, GET /ui/api/progress, POST /ui/api/eval")
	}
}

// client is the current client, or nil while loading.
func (h *Handler) client() *router.Client {
	if h.opts.Client == nil {
		return nil
	}
	return h.opts.Client()
}

// info serves GET /ui/api/info: what the page needs to know that the
// public API does not say. default_thresholds is the score_threshold a
// route gets when its own is null, per embedding-capable model group.
func (h *Handler) info(ctx *fasthttp.RequestCtx) {
	c := h.client()
	if c == nil {
		writeLoading(ctx)
		return
	}
	cfg := c.Config()
	th := map[string]float32{}
	for _, name := range cfg.ModelNames() {
		if g := cfg.Group(name); len(g) > 0 && g[0].IsEmbedder() {
			th[name] = router.DefaultThreshold(g[0].Params.Provider(), g[0].Params.UpstreamModel())
		}
	}
	writeJSON(ctx, 200, map[string]any{
		"ready":                        true,
		"generation":                   c.Seq(),
		"routers":                      c.Routers(),
		"default_thresholds":           th,
		"default_classifier_threshold": router.DefaultClassifierThreshold,
		"max_eval_rows":                MaxEvalRows,
	})
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, 500, "internal_error", "", "encoding the answer: "+err.Error())
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// writeError writes OpenAI's error envelope, as the rest of the API does,
// so the page reads every error the same way.
func writeError(ctx *fasthttp.RequestCtx, status int, code, param, msg string) {
	typ := "invalid_request_error"
	switch {
	case status == 503:
		typ = "service_unavailable"
	case status == 429:
		typ = "rate_limit_error"
	case status >= 500:
		typ = "internal_error"
	}
	env := openai.ErrorEnvelope{Error: openai.ErrorBody{Message: msg, Type: typ}}
	if param != "" {
		env.Error.Param = &param
	}
	if code != "" {
		env.Error.Code = &code
	}
	b, _ := json.Marshal(env)
	ctx.Response.ResetBody()
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

func writeLoading(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set("Retry-After", "1")
	writeError(ctx, 503, "loading", "", "autorouter is still loading its models and routers; retry shortly")
}
