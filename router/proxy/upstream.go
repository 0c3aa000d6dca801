package proxy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/autorouter/autorouter/router"
)

// deployment is one model_list entry the proxy can send requests to.
type deployment struct {
	group    string
	id       string // x-litellm-model-id: model_info.id, else group/index
	provider string // "openai" (any OpenAI-compatible api_base) or "mock"
	model    string // upstream model name
	base     string // api_base without trailing slash
	key      router.Secret
	timeout  time.Duration
	retries  int
	mock     *mockConfig
	client   *fasthttp.HostClient

	inFlight     atomic.Int64
	mu           sync.Mutex
	fails        int
	coolingUntil time.Time
}

// upstreams holds every deployment by model group, plus retry policy.
type upstreams struct {
	groups       map[string][]*deployment
	leastBusy    bool
	allowedFails int
	cooldown     time.Duration
	fallbacks    map[string][]string
	backoff      time.Duration
}

// Defaults LiteLLM users expect.
const (
	defaultTimeout      = 600 * time.Second
	defaultRetries      = 2
	defaultAllowedFails = 3
	defaultCooldown     = 5 * time.Second
)

func newUpstreams(cfg *router.Config) (*upstreams, error) {
	rs := cfg.RouterSettings
	u := &upstreams{
		groups:       map[string][]*deployment{},
		leastBusy:    rs.RoutingStrategy == "least-busy",
		allowedFails: defaultAllowedFails,
		cooldown:     defaultCooldown,
		fallbacks:    map[string][]string{},
		backoff:      50 * time.Millisecond,
	}
	if rs.AllowedFails != nil {
		u.allowedFails = *rs.AllowedFails
	}
	if rs.CooldownTime > 0 {
		u.cooldown = rs.CooldownTime.D()
	}
	for _, fb := range rs.Fallbacks {
		for from, tos := range fb {
			u.fallbacks[from] = append(u.fallbacks[from], tos...)
		}
	}
	retries := defaultRetries
	if rs.NumRetries != nil {
		retries = *rs.NumRetries
	}
	for i, d := range cfg.ModelList {
		p := d.Params
		prov := p.Provider()
		if prov == "auto_router" || prov == "local" {
			continue
		}
		dep := &deployment{group: d.ModelName, provider: prov, model: p.UpstreamModel(), key: p.APIKey, retries: retries,
			timeout: defaultTimeout}
		if id, ok := d.ModelInfo["id"].(string); ok && id != "" {
			dep.id = id
		} else {
			dep.id = fmt.Sprintf("%s/%d", d.ModelName, i)
		}
		if p.MaxRetries != nil {
			dep.retries = *p.MaxRetries
		}
		if rs.Timeout > 0 {
			dep.timeout = rs.Timeout.D()
		}
		if p.Timeout > 0 {
			dep.timeout = p.Timeout.D()
		}
		switch prov {
		case "mock":
			dep.mock = newMockConfig(p, d.ModelInfo)
		default:
			// Every other provider is spoken to as an OpenAI-compatible API.
			base := p.APIBase
			if base == "" {
				base = "https://api.openai.com/v1"
			}
			client, err := newHostClient(base)
			if err != nil {
				return nil, fmt.Errorf("model %q: api_base %q: %w", d.ModelName, base, err)
			}
			dep.base, dep.client = strings.TrimRight(base, "/"), client
		}
		u.groups[d.ModelName] = append(u.groups[d.ModelName], dep)
	}
	return u, nil
}

// newHostClient returns a keep-alive connection pool for one api_base.
func newHostClient(base string) (*fasthttp.HostClient, error) {
	pu, err := url.Parse(base)
	if err != nil || pu.Host == "" || (pu.Scheme != "http" && pu.Scheme != "https") {
		return nil, errors.New("want an http(s) URL such as https://api.openai.com/v1")
	}
	addr := pu.Host
	if pu.Port() == "" {
		if pu.Scheme == "https" {
			addr = net.JoinHostPort(pu.Hostname(), "443")
		} else {
			addr = net.JoinHostPort(pu.Hostname(), "80")
		}
	}
	return &fasthttp.HostClient{
		Addr:                     addr,
		IsTLS:                    pu.Scheme == "https",
		MaxConns:                 1024,
		MaxIdleConnDuration:      90 * time.Second,
		StreamResponseBody:       true,
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true,
	}, nil
}

// pick chooses a deployment of group that is not cooling down: at random
// (simple-shuffle), or the one with the fewest requests in flight
// (least-busy). tried excludes deployments that already failed this request
// while others remain.
func (u *upstreams) pick(group string, tried map[*deployment]bool) *deployment {
	deps := u.groups[group]
	now := time.Now()
	var live []*deployment
	for _, d := range deps {
		if !d.coolingDown(now) && !tried[d] {
			live = append(live, d)
		}
	}
	if len(live) == 0 {
		for _, d := range deps {
			if !d.coolingDown(now) {
				live = append(live, d)
			}
		}
	}
	if len(live) == 0 {
		return nil
	}
	if u.leastBusy {
		best := live[0]
		for _, d := range live[1:] {
			if d.inFlight.Load() < best.inFlight.Load() {
				best = d
			}
		}
		return best
	}
	return live[rand.IntN(len(live))]
}

func (d *deployment) coolingDown(now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return now.Before(d.coolingUntil)
}

// failed records a retryable failure; allowedFails in a row put the
// deployment on cooldown.
func (u *upstreams) failed(d *deployment) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fails++
	if d.fails >= u.allowedFails {
		d.coolingUntil = time.Now().Add(u.cooldown)
		d.fails = 0
	}
}

func (u *upstreams) succeeded(d *deployment) {
	d.mu.Lock()
	d.fails = 0
	d.mu.Unlock()
}

// chain is the model groups to try for target, in order: the target, then
// its router_settings.fallbacks.
func (u *upstreams) chain(target string) []string {
	return append([]string{target}, u.fallbacks[target]...)
}

// retryable reports whether an upstream status is worth another attempt.
func retryable(status int) bool { return status == 429 || status >= 500 }
