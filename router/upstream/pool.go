// Package upstream sends API requests to model deployments: load balancing
// within a model group, retries with backoff that honours Retry-After and
// the context, cooldowns of failing deployments, fallbacks to other groups,
// the built-in mock provider, and the server-sent-event reader. It is
// transport-free on the client side: it takes a request body and returns an
// upstream answer as a status, headers and a body or an event stream, so
// the HTTP proxy and the Go library share it.
package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/autorouter/autorouter/router/config"
	"github.com/autorouter/autorouter/router/openai"
	"github.com/autorouter/autorouter/router/sse"
	"github.com/autorouter/autorouter/router/translate"
)

// API is the wire API of a request, which decides its path upstream and
// how its stream ends.
type API uint8

// The APIs a deployment can be sent.
const (
	Chat        API = iota // POST /chat/completions
	Completions            // POST /completions
	Embeddings             // POST /embeddings
	Responses              // POST /responses (OpenAI Responses)
	Messages               // POST /messages (Anthropic Messages)
	numAPIs
)

var apiPaths = [numAPIs]string{"/chat/completions", "/completions", "/embeddings", "/responses", "/messages"}

// Path is the API's path below api_base.
func (a API) Path() string { return apiPaths[a] }

// streamDone reports whether an event ends a stream of this API.
func (a API) streamDone(event []byte) bool {
	switch a {
	case Responses:
		t := sse.Type(event)
		return bytes.Equal(t, []byte("response.completed")) || bytes.Equal(t, []byte("response.failed")) ||
			bytes.Equal(t, []byte("response.incomplete")) || sse.IsDone(event)
	case Messages:
		return bytes.Equal(sse.Type(event), []byte("message_stop"))
	}
	return sse.IsDone(event)
}

// BodyWriter writes a request's JSON body for one deployment: the client's
// body with "model" set to the deployment's upstream model name.
type BodyWriter interface {
	AppendBody(dst []byte, model string) []byte
}

// Request is one call to a model group.
type Request struct {
	API API
	// Stream asks for server-sent events.
	Stream bool
	// Body writes the body of each attempt.
	Body BodyWriter
	// Raw is the body as the client sent it, which a mock deployment
	// answers from (its mock_response override, its prompt), and which is
	// translated for upstreams that speak only chat completions.
	Raw []byte
	// Model is the model the client asked for, which a translated
	// Messages answer names.
	Model string

	// chat is Raw translated to chat completions, made on first need.
	chat    *openai.Body
	chatErr error
	echo    translate.ResponsesEcho
}

// chatBody is the request translated to chat completions.
func (r *Request) chatBody() (*openai.Body, error) {
	if r.chat != nil || r.chatErr != nil {
		return r.chat, r.chatErr
	}
	var raw []byte
	switch r.API {
	case Responses:
		raw, r.chatErr = translate.ResponsesToChat(r.Raw)
		r.echo = translate.EchoOf(r.Raw)
	case Messages:
		raw, r.chatErr = translate.MessagesToChat(r.Raw)
	default:
		return nil, fmt.Errorf("upstream: %s cannot be translated", r.API.Path())
	}
	if r.chatErr == nil {
		r.chat, r.chatErr = openai.ParseBody(raw)
	}
	if r.chatErr != nil {
		r.chatErr = &badRequest{r.chatErr}
	}
	return r.chat, r.chatErr
}

// badRequest is a request no deployment can serve as it is (a 400): Do
// returns it at once instead of retrying.
type badRequest struct{ err error }

func (e *badRequest) Error() string { return e.err.Error() }
func (e *badRequest) Unwrap() error { return e.err }

// ErrBadRequest marks errors of requests that cannot be served as they
// are; the error wrapped names the field.
var ErrBadRequest = errors.New("upstream: bad request")

func (e *badRequest) Is(target error) bool { return target == ErrBadRequest }

// Response is a deployment's answer. Close it when done; until then it
// holds an upstream connection.
type Response struct {
	// Status is the upstream's HTTP status: below 400, or a 4xx that is the
	// client's to see (a bad request, say) and was not retried.
	Status int
	// Deployment answered; Group is its model group, which differs from the
	// requested one when a fallback answered.
	Deployment *Deployment
	Group      string
	// Attempts counts upstream attempts, retries and fallbacks included.
	Attempts int
	// Body is a non-streaming answer, read straight from the upstream and
	// bounded by max_response_size_mb; nil for a stream.
	Body io.Reader
	// ContentLength is Body's length, -1 when not known in advance.
	ContentLength int64
	// Events is a stream's events; its first event has already arrived.
	Events *Events

	closer  io.Closer
	headers interface{ VisitHeaders(func(k, v []byte)) }
	pool    *Pool
	release func()
}

// VisitHeaders calls f for each upstream response header; k and v are only
// valid during the call.
func (r *Response) VisitHeaders(f func(k, v []byte)) {
	if r.headers != nil {
		r.headers.VisitHeaders(f)
	}
}

// Close releases the upstream connection; a stream not read to its end is
// cancelled upstream. It is safe to call more than once.
func (r *Response) Close() error {
	if r.release != nil {
		r.release()
		r.release = nil
	}
	var err error
	if r.closer != nil {
		c := r.closer
		r.closer = nil
		err = c.Close()
	}
	if r.Events != nil {
		r.Events.release()
		r.Events = nil
	}
	return err
}

// Deployment is one model_list entry requests can be sent to.
type Deployment struct {
	// Group is the model_name; ID is x-litellm-model-id (model_info.id, or
	// group/index); Model is the name sent upstream.
	Group, ID, Model string
	// Provider is "mock" or the provider prefix of litellm_params.model;
	// every provider but mock is spoken to as an OpenAI-compatible API.
	Provider string

	ep   endpoint
	urls [numAPIs]string
	// native says which APIs the upstream serves itself; Responses and
	// Messages requests to one that serves only chat are translated.
	native        [numAPIs]bool
	auth          string // "Bearer <key>", or ""
	timeout       time.Duration
	streamTimeout time.Duration
	retries       int
	mock          *mock
	health        *health
	inFlight      atomic.Int64
}

// group is one model group's deployments.
type group struct {
	name  string
	deps  []*Deployment
	chain []string // this group, then its fallbacks
}

// Options are what New needs beyond the config.
type Options struct {
	// Transports are the connection pools, shared across generations.
	// nil makes new ones.
	Transports *Transports
	// Cooldowns is the deployments' health, shared across generations (and
	// replicas). nil makes a new one.
	Cooldowns *Cooldowns
	// Logger receives cooldown and retry logs. nil discards them.
	Logger *slog.Logger
}

// Pool is every deployment of one config generation by model group, with
// its retry and cooldown policy. It is immutable and safe for concurrent use.
type Pool struct {
	groups       map[string]*group
	t            *Transports
	cool         *Cooldowns
	logger       *slog.Logger
	leastBusy    bool
	allowedFails int
	cooldown     time.Duration
	backoff      time.Duration
	maxBody      int
	maxEvent     int
	// bufs holds *[]byte request bodies, reused across attempts.
	bufs sync.Pool
}

// Defaults LiteLLM users expect.
const (
	DefaultTimeout      = 600 * time.Second
	DefaultRetries      = 2
	DefaultAllowedFails = 3
	DefaultCooldown     = 5 * time.Second
	// maxBackoff caps the wait between two attempts; a longer Retry-After
	// moves on to the next deployment or fallback instead of waiting.
	maxBackoff = 10 * time.Second
	// maxErrorBody bounds how much of an upstream error answer is read.
	maxErrorBody = 64 << 10
)

// New builds the deployments of cfg, which must be prepared. Auto routers
// and local embedding models are not upstream deployments and are skipped.
func New(cfg *config.Config, opts Options) (*Pool, error) {
	if opts.Transports == nil {
		opts.Transports = NewTransports()
	}
	if opts.Cooldowns == nil {
		opts.Cooldowns = NewCooldowns()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	rs := cfg.RouterSettings
	lim := cfg.GeneralSettings.Limits.WithDefaults(0)
	p := &Pool{
		groups:       map[string]*group{},
		t:            opts.Transports,
		cool:         opts.Cooldowns,
		logger:       opts.Logger,
		leastBusy:    rs.RoutingStrategy == "least-busy",
		allowedFails: DefaultAllowedFails,
		cooldown:     rs.CooldownTime.Or(DefaultCooldown),
		backoff:      50 * time.Millisecond,
		maxBody:      lim.ResponseBytes(),
		maxEvent:     lim.MaxSSEEventBytes,
	}
	p.bufs.New = func() any { b := make([]byte, 0, 4096); return &b }
	if rs.AllowedFails != nil {
		p.allowedFails = *rs.AllowedFails
	}
	retries := DefaultRetries
	if rs.NumRetries != nil {
		retries = *rs.NumRetries
	}
	fallbacks := map[string][]string{}
	for _, fb := range rs.Fallbacks {
		for from, tos := range fb {
			fallbacks[from] = append(fallbacks[from], tos...)
		}
	}
	for i := range cfg.ModelList {
		d := &cfg.ModelList[i]
		prov := d.Params.Provider()
		if prov == config.ProviderAutoRouter || prov == config.ProviderLocal {
			continue
		}
		dep, err := p.newDeployment(cfg, d, i, retries)
		if err != nil {
			return nil, err
		}
		g := p.groups[d.ModelName]
		if g == nil {
			g = &group{name: d.ModelName}
			g.chain = append([]string{d.ModelName}, fallbacks[d.ModelName]...)
			p.groups[d.ModelName] = g
		}
		g.deps = append(g.deps, dep)
	}
	return p, nil
}

func (p *Pool) newDeployment(cfg *config.Config, d *config.Deployment, i int, retries int) (*Deployment, error) {
	params := d.Params
	dep := &Deployment{Group: d.ModelName, ID: d.ModelInfo.ID, Model: params.UpstreamModel(), Provider: params.Provider(), retries: retries}
	if dep.ID == "" {
		dep.ID = d.ModelName + "/" + strconv.Itoa(i)
	}
	if params.MaxRetries != nil {
		dep.retries = *params.MaxRetries
	}
	rs := cfg.RouterSettings
	dep.timeout = params.Timeout.Or(rs.Timeout.Or(DefaultTimeout))
	dep.streamTimeout = params.StreamTimeout.Or(rs.StreamTimeout.Or(dep.timeout))
	dep.health = p.cool.health(dep.ID)
	if dep.Provider == config.ProviderMock {
		dep.mock = newMock(params, d.ModelInfo)
		// The mock answers chat, completions and embeddings itself, and
		// the other APIs through the same translation real chat-only
		// upstreams get.
		dep.native[Chat], dep.native[Completions], dep.native[Embeddings] = true, true, true
		return dep, nil
	}
	base := params.APIBase
	switch {
	case dep.Provider == config.ProviderAnthropic:
		if base == "" {
			base = "https://api.anthropic.com/v1"
		}
		dep.native[Messages] = true
	default:
		if base == "" {
			base = "https://api.openai.com/v1"
		}
		dep.native[Chat], dep.native[Completions], dep.native[Embeddings] = true, true, true
		official := params.APIBase == "" || strings.Contains(params.APIBase, "api.openai.com")
		dep.native[Responses] = official
		if s := d.ModelInfo.SupportsResponsesAPI; s != nil {
			dep.native[Responses] = *s
		}
	}
	ep, err := p.t.endpoint(base)
	if err != nil {
		return nil, fmt.Errorf("model %q: api_base %q: %w", d.ModelName, base, err)
	}
	dep.ep = ep
	for a := API(0); a < numAPIs; a++ {
		dep.urls[a] = ep.base + a.Path()
	}
	if k := params.APIKey.Value(); k != "" {
		dep.auth = "Bearer " + k
		if dep.Provider == config.ProviderAnthropic {
			dep.auth = k // sent as x-api-key
		}
	}
	return dep, nil
}

// Has reports whether model is a group requests can be sent to.
func (p *Pool) Has(model string) bool { return p.groups[model] != nil }

// Deployments returns a group's deployments; the slice belongs to the Pool.
func (p *Pool) Deployments(model string) []*Deployment {
	if g := p.groups[model]; g != nil {
		return g.deps
	}
	return nil
}

// CoolingDown reports whether the deployment is on cooldown now.
func (d *Deployment) CoolingDown() bool { return d.health.coolingAt(time.Now().UnixNano()) }

// InFlight is how many requests the deployment is answering.
func (d *Deployment) InFlight() int64 { return d.inFlight.Load() }

// maxTried is how many distinct deployments one request remembers having
// failed on; more than that in one group is rare enough to go uncounted.
const maxTried = 8

// tried is the deployments that failed during one request: each counts
// once against its allowed_fails, however often this request retried it.
type tried struct {
	deps [maxTried]*Deployment
	n    int
}

func (t *tried) has(d *Deployment) bool {
	for _, x := range t.deps[:t.n] {
		if x == d {
			return true
		}
	}
	return false
}

func (t *tried) add(d *Deployment) bool {
	if t.has(d) || t.n == maxTried {
		return false
	}
	t.deps[t.n] = d
	t.n++
	return true
}

// pick chooses a deployment of g that is not cooling down, preferring
// those this request has not failed on: at random (simple-shuffle), or the
// one with the fewest requests in flight (least-busy). When every
// deployment is cooling down it lets one probe request through to the one
// whose cooldown ends first; probe says so.
func (p *Pool) pick(g *group, tr *tried) (d *Deployment, probe bool) {
	now := time.Now()
	n := now.UnixNano()
	var live [16]*Deployment
	pickFrom := func(skipTried bool) *Deployment {
		k, seen := 0, 0
		var best *Deployment
		for _, d := range g.deps {
			if d.health.coolingAt(n) || (skipTried && tr.has(d)) {
				continue
			}
			if p.leastBusy {
				if best == nil || d.inFlight.Load() < best.inFlight.Load() {
					best = d
				}
				continue
			}
			// Reservoir sampling keeps this allocation-free for any size.
			seen++
			if k < len(live) {
				live[k] = d
				k++
			} else if j := rand.IntN(seen); j < len(live) {
				live[j] = d
			}
		}
		if p.leastBusy {
			return best
		}
		if k == 0 {
			return nil
		}
		return live[rand.IntN(k)]
	}
	if d := pickFrom(true); d != nil {
		return d, false
	}
	if d := pickFrom(false); d != nil {
		return d, false
	}
	var soonest *Deployment
	for _, d := range g.deps {
		if soonest == nil || d.health.until.Load() < soonest.health.until.Load() {
			soonest = d
		}
	}
	if soonest != nil && soonest.health.tryProbe(now, min(time.Second, p.cooldown)) {
		return soonest, true
	}
	return nil, false
}

// Do sends req to the model group, retrying 429s, 5xx answers and
// connection errors with backoff (Retry-After when the upstream gives one),
// on other deployments of the group first, then on its fallbacks. A stream
// is retried only until its first event arrives. A deployment counts one
// failed request against allowed_fails however often this call retried
// it. Cancelling ctx cancels the upstream call and any pending retry.
func (p *Pool) Do(ctx context.Context, model string, req *Request) (*Response, error) {
	g := p.groups[model]
	if g == nil {
		return nil, fmt.Errorf("model %q: %w", model, ErrNoDeployment)
	}
	var (
		tr       tried
		last     error
		lastStat int
		lastMsg  string
		attempts int
	)
	for _, name := range g.chain {
		fg := p.groups[name]
		if fg == nil {
			continue
		}
		for n := 0; ; n++ {
			d, probe := p.pick(fg, &tr)
			if d == nil {
				last = fmt.Errorf("model %q: %w; a probe request is testing it", name, ErrCoolingDown)
				break
			}
			attempts++
			resp, err := p.attempt(ctx, d, req)
			if probe {
				d.health.probing.Store(false)
			}
			if err == nil {
				d.health.succeed()
				resp.Deployment, resp.Group, resp.Attempts = d, name, attempts
				return resp, nil
			}
			if cerr := ctx.Err(); cerr != nil {
				return nil, &Error{Model: model, Attempts: attempts, Err: fmt.Errorf("%w (%v)", cerr, err)}
			}
			if errors.Is(err, ErrBadRequest) {
				return nil, err
			}
			last = err
			var se *statusError
			wait := p.backoffFor(n)
			if errors.As(err, &se) {
				lastStat, lastMsg = se.status, se.msg
				if ra, ok := retryAfterOf(err); ok {
					wait = ra
				}
			}
			if !errors.Is(err, ErrNoFreeConns) && tr.add(d) {
				if until, cooled := d.health.fail(time.Now(), p.allowedFails, p.cooldown); cooled {
					p.logger.Warn("deployment cooling down after repeated failures", "deployment", d.ID, "model", d.Group,
						"allowed_fails", p.allowedFails, "window", FailWindow.String(), "until", until.Format(time.RFC3339), "last_error", err.Error())
					p.cool.publish(d.ID, until)
				}
			}
			if errors.Is(err, ErrTooLarge) || n >= d.retries || wait > maxBackoff {
				break
			}
			if err := sleep(ctx, wait); err != nil {
				return nil, &Error{Model: model, Attempts: attempts, Status: lastStat, UpstreamMessage: lastMsg, Err: err}
			}
		}
	}
	return nil, &Error{Model: model, Attempts: attempts, Status: lastStat, UpstreamMessage: lastMsg, Err: last}
}

// backoffFor is the wait before retry n+1: exponential with jitter.
func (p *Pool) backoffFor(n int) time.Duration {
	b := p.backoff << min(n, 10)
	b = min(b, 2*time.Second)
	return b/2 + time.Duration(rand.Int64N(int64(b)/2+1))
}

// sleep waits for d or for ctx to end.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryAfter is a statusError with the upstream's Retry-After.
type retryAfter struct {
	*statusError
	wait time.Duration
}

func (r *retryAfter) Unwrap() error { return r.statusError }

func retryAfterOf(err error) (time.Duration, bool) {
	var ra *retryAfter
	if errors.As(err, &ra) {
		return ra.wait, true
	}
	return 0, false
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 && s < 1e6 {
		return time.Duration(s * float64(time.Second)), true
	}
	if t, err := time.Parse(time.RFC1123, v); err == nil {
		return max(0, time.Until(t)), true
	}
	return 0, false
}

// attempt sends one request to one deployment. It returns a response the
// client may see (success or a non-retryable 4xx) or an error to retry.
func (p *Pool) attempt(ctx context.Context, d *Deployment, req *Request) (*Response, error) {
	if !d.native[req.API] {
		return p.translated(ctx, d, req)
	}
	d.inFlight.Add(1)
	if d.mock != nil {
		resp, err := d.mock.respond(ctx, d, req, p.maxEvent)
		if err != nil {
			d.inFlight.Add(-1)
			return nil, err
		}
		resp.release = func() { d.inFlight.Add(-1) }
		return resp, nil
	}
	freq := fasthttp.AcquireRequest()
	freq.SetRequestURI(d.urls[req.API])
	freq.Header.SetMethod(fasthttp.MethodPost)
	freq.Header.SetContentType("application/json")
	freq.Header.SetUserAgent("autorouter")
	switch {
	case d.Provider == config.ProviderAnthropic:
		if d.auth != "" {
			freq.Header.Set("x-api-key", d.auth)
		}
		freq.Header.Set("anthropic-version", "2023-06-01")
	case d.auth != "":
		freq.Header.Set(fasthttp.HeaderAuthorization, d.auth)
	}
	dl := deadlines{total: d.timeout}
	if req.Stream {
		freq.Header.Set(fasthttp.HeaderAccept, "text/event-stream")
		dl.idle = d.streamTimeout
	}
	bp := p.bufs.Get().(*[]byte)
	*bp = req.Body.AppendBody((*bp)[:0], d.Model)
	freq.SetBodyRaw(*bp)
	body, err := p.t.exchange(ctx, d.ep, freq, dl, p.maxBody)
	fasthttp.ReleaseRequest(freq)
	p.bufs.Put(bp)
	if err != nil {
		d.inFlight.Add(-1)
		return nil, fmt.Errorf("deployment %s: %w", d.ID, err)
	}
	resp, err := p.answer(d, req, body)
	if err != nil {
		body.Close()
		d.inFlight.Add(-1)
		return nil, err
	}
	resp.release = func() { d.inFlight.Add(-1) }
	return resp, nil
}

// answer turns an upstream answer into a Response or a retryable error.
func (p *Pool) answer(d *Deployment, req *Request, body *Body) (*Response, error) {
	status := body.Status()
	if status >= 400 {
		msg := readErrorAnswer(body)
		if retryable(status) {
			se := &statusError{deployment: d.ID, status: status, msg: msg.msg}
			if ra, ok := parseRetryAfter(body.Header("Retry-After")); ok {
				return nil, &retryAfter{statusError: se, wait: ra}
			}
			return nil, se
		}
		// The upstream's own 4xx is the client's to see, unchanged; it is
		// small (read whole above), so the connection is already free.
		return &Response{Status: status, Body: bytes.NewReader(msg.raw), ContentLength: int64(len(msg.raw)), headers: body, closer: body}, nil
	}
	ct := body.Header(fasthttp.HeaderContentType)
	if req.Stream && bytes.HasPrefix([]byte(ct), []byte("text/event-stream")) {
		ev := newEvents(&p.t.events, body, p.maxEvent, req.API.streamDone)
		if err := ev.Peek(); err != nil {
			ev.release()
			// Nothing reached the client yet: this attempt can be retried.
			return nil, fmt.Errorf("deployment %s: stream failed before its first event: %w", d.ID, err)
		}
		return &Response{Status: status, Events: ev, headers: body, closer: body}, nil
	}
	n := body.ContentLength()
	if n > int64(p.maxBody) {
		return nil, fmt.Errorf("deployment %s: a %d-byte answer: %w", d.ID, n, ErrTooLarge)
	}
	if n >= 0 {
		// Known length within the limit: stream it through unbuffered.
		return &Response{Status: status, Body: body, ContentLength: n, headers: body, closer: body}, nil
	}
	// Unknown length: read it whole, so that one over the limit becomes a
	// clean error instead of a truncated answer.
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, fmt.Errorf("deployment %s: %w", d.ID, err)
	}
	return &Response{Status: status, Body: bytes.NewReader(b), ContentLength: int64(len(b)), headers: body, closer: body}, nil
}

// retryable reports whether an upstream status is worth another attempt.
func retryable(status int) bool { return status == 408 || status == 429 || status >= 500 }
