// Package config is autorouter's configuration: LiteLLM's proxy config.yaml
// (model_list, router_settings, general_settings) and its router.json route
// files, decoded strictly into typed values, defaulted and validated.
//
// A config flows defaults → decode → Prepare (routes loaded, lookups built)
// → Validate. Load and Parse do all of it for a file; a Config built in Go
// goes through Prepare, which router.New calls. After Prepare a Config is
// read-only: every generation of the router holds one and never changes it.
package config

import (
	"strings"
)

// Config is a LiteLLM proxy config.yaml. Only the fields autorouter acts on are
// typed; LiteLLM settings it does not use are accepted and reported once as
// ignored, so a LiteLLM file loads as it is.
type Config struct {
	ModelList       []Deployment    `yaml:"model_list" json:"model_list"`
	RouterSettings  RouterSettings  `yaml:"router_settings" json:"router_settings"`
	GeneralSettings GeneralSettings `yaml:"general_settings" json:"general_settings"`

	// Path is the file the config was loaded from; relative router.json and
	// model paths resolve against its directory. Empty for configs built in Go.
	Path string `yaml:"-" json:"-"`

	// groups maps each model_name to its deployments, in model_list order;
	// Prepare builds it so that a request's lookup is one map access.
	groups map[string][]*Deployment
	// names is every distinct model_name, in model_list order.
	names []string
}

// Deployment is one model_list entry. Several entries may share a ModelName;
// together they form a model group that requests are load-balanced over.
type Deployment struct {
	ModelName string        `yaml:"model_name" json:"model_name"`
	Params    LiteLLMParams `yaml:"litellm_params" json:"litellm_params"`
	ModelInfo ModelInfo     `yaml:"model_info" json:"model_info"`

	// Source says where the entry comes from: SourceConfig (config.yaml or
	// Go) or SourceDB (added through the management API).
	Source string `yaml:"-" json:"-"`
}

// Sources of a Deployment.
const (
	SourceConfig = "config"
	SourceDB     = "db"
)

// LiteLLMParams is a deployment's litellm_params block.
type LiteLLMParams struct {
	// Model is "<provider>/<name>": openai/gpt-4o, auto_router/<id>,
	// local/all-MiniLM-L6-v2 (the in-process ONNX encoder) or mock/<anything>.
	// A bare name (text-embedding-3-large) means the openai provider, as in LiteLLM.
	Model   string `yaml:"model" json:"model"`
	APIBase string `yaml:"api_base" json:"api_base,omitempty"`
	APIKey  Secret `yaml:"api_key" json:"api_key,omitempty"`
	// Timeout bounds one whole non-streaming upstream attempt. LiteLLM writes
	// seconds as a number; a Go duration string ("30s") is accepted too.
	// Zero means router_settings.timeout, then the default (600 s).
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
	// StreamTimeout bounds a streaming attempt's wait for its first byte and
	// between two events (LiteLLM's stream_timeout), never the whole stream.
	// Zero means router_settings.stream_timeout, then Timeout.
	StreamTimeout Duration `yaml:"stream_timeout" json:"stream_timeout,omitempty"`
	// MaxRetries overrides router_settings.num_retries for this deployment; nil
	// means inherit.
	MaxRetries *int `yaml:"max_retries" json:"max_retries,omitempty"`

	// ModelPath is the directory of a local ONNX model (model.onnx plus
	// tokenizer.json). Empty means <models dir>/<name>.
	ModelPath string `yaml:"model_path" json:"model_path,omitempty"`

	// MockResponse is the fixed reply of a mock/ deployment (LiteLLM's name).
	MockResponse *string `yaml:"mock_response" json:"mock_response,omitempty"`

	// AutoRouterConfigPath is an auto router's router.json file.
	AutoRouterConfigPath string `yaml:"auto_router_config_path" json:"auto_router_config_path,omitempty"`
	// AutoRouterConfig holds an auto router's routes inline: in YAML a JSON
	// string (LiteLLM's form) or a mapping, in JSON a string or an object.
	// After Prepare it holds the routes of either source.
	AutoRouterConfig         *RouterFile `yaml:"auto_router_config" json:"auto_router_config,omitempty"`
	AutoRouterDefaultModel   string      `yaml:"auto_router_default_model" json:"auto_router_default_model,omitempty"`
	AutoRouterEmbeddingModel string      `yaml:"auto_router_embedding_model" json:"auto_router_embedding_model,omitempty"`

	// Other holds the JSON keys autorouter does not act on (LiteLLM's rpm,
	// tpm, ...), as they came through the management API, so that they
	// are stored and given back. In YAML such keys are reported as unused.
	Other map[string]any `yaml:"-" json:"-"`
}

// ModelInfo is a deployment's model_info block: LiteLLM's metadata plus the
// autorouter options below. Keys autorouter does not act on (LiteLLM's
// base_model, description, ...) are kept in Other, so that the management
// API gives them back.
type ModelInfo struct {
	// ID is the deployment's id (x-litellm-model-id); empty means one is
	// derived from its position.
	ID string `yaml:"id" json:"id,omitempty"`
	// Mode is LiteLLM's model mode ("chat", "embedding", ...); informational.
	Mode string `yaml:"mode" json:"mode,omitempty"`

	// Quantized picks model_int8.onnx for a local model.
	Quantized bool `yaml:"quantized" json:"quantized,omitempty"`
	// ModelFile names the graph of a local model; it overrides Quantized.
	ModelFile string `yaml:"model_file" json:"model_file,omitempty"`
	// MicroBatch merges concurrent prompt embeddings of a local model into
	// shared ONNX runs; MaxBatch and BatchWindow tune it (embed.BatchOptions).
	MicroBatch  bool     `yaml:"micro_batch" json:"micro_batch,omitempty"`
	MaxBatch    int      `yaml:"max_batch" json:"max_batch,omitempty"`
	BatchWindow Duration `yaml:"batch_window" json:"batch_window,omitempty"`

	// SupportsResponsesAPI says whether the upstream serves OpenAI's
	// Responses API (/responses) itself; when it does not, Responses
	// requests are translated to chat completions. nil means yes for
	// OpenAI's own API (no api_base, or api.openai.com) and no for every
	// other OpenAI-compatible server.
	SupportsResponsesAPI *bool `yaml:"supports_responses_api" json:"supports_responses_api,omitempty"`

	// MockDelay delays a mock deployment's answer (and its stream events).
	MockDelay Duration `yaml:"mock_delay" json:"mock_delay,omitempty"`
	// MockStatus makes a mock deployment fail every request with this status.
	MockStatus int `yaml:"mock_status" json:"mock_status,omitempty"`

	// Other holds every other key, unchanged.
	Other map[string]any `yaml:",inline" json:"-"`
}

// RouterSettings is LiteLLM's router_settings block.
type RouterSettings struct {
	// NumRetries is how often a failed upstream call (429, 5xx, connection
	// error) is retried on the same model group; nil means the default (2).
	NumRetries *int `yaml:"num_retries" json:"num_retries,omitempty"`
	// RoutingStrategy picks a deployment within a model group:
	// "simple-shuffle" (default) or "least-busy".
	RoutingStrategy string `yaml:"routing_strategy" json:"routing_strategy,omitempty"`
	// Fallbacks maps a model group to the groups tried, in order, once its own
	// retries are exhausted: [{"gpt-4o": ["gpt-4o-mini"]}].
	Fallbacks []map[string][]string `yaml:"fallbacks" json:"fallbacks,omitempty"`
	// AllowedFails is how many failed requests a deployment may have within
	// one minute before it is put on cooldown (LiteLLM's meaning); nil means
	// the default (3).
	AllowedFails *int `yaml:"allowed_fails" json:"allowed_fails,omitempty"`
	// CooldownTime is how long a failing deployment is skipped. Default 5 s.
	CooldownTime Duration `yaml:"cooldown_time" json:"cooldown_time,omitempty"`
	// Timeout is the default whole-call timeout of non-streaming attempts.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
	// StreamTimeout is the default first-byte and between-events timeout of
	// streaming attempts.
	StreamTimeout Duration `yaml:"stream_timeout" json:"stream_timeout,omitempty"`

	// DecisionCacheEntries bounds the routing-decision cache, which routes
	// a user turn seen before (an agent loop resending it) without running
	// the encoder. 0 means the default (10000); a negative value turns the
	// cache off. DecisionCacheBytes bounds its memory; 0 means 32 MiB.
	DecisionCacheEntries int   `yaml:"decision_cache_entries" json:"decision_cache_entries,omitempty"`
	DecisionCacheBytes   int64 `yaml:"decision_cache_bytes" json:"decision_cache_bytes,omitempty"`
	// SessionAffinity keeps a session's first routing decision for its
	// following requests (the session key is the x-autorouter-session
	// header, else metadata.session_id) for SessionTTL (default 30 min),
	// unless the router changes; MaxSessions bounds the sessions kept per
	// replica (default 100000).
	SessionAffinity bool     `yaml:"session_affinity" json:"session_affinity,omitempty"`
	SessionTTL      Duration `yaml:"session_ttl" json:"session_ttl,omitempty"`
	MaxSessions     int      `yaml:"max_sessions" json:"max_sessions,omitempty"`

	// RedisHost, RedisPort and RedisPassword (or RedisURL) name a Redis
	// server that replicas share cooldowns through.
	RedisHost     string `yaml:"redis_host" json:"redis_host,omitempty"`
	RedisPort     int    `yaml:"redis_port" json:"redis_port,omitempty"`
	RedisPassword Secret `yaml:"redis_password" json:"redis_password,omitempty"`
	RedisURL      Secret `yaml:"redis_url" json:"redis_url,omitempty"`
}

// GeneralSettings is LiteLLM's general_settings block, plus autorouter's
// resource limits (see Limits).
type GeneralSettings struct {
	// MasterKey, when set, is the bearer token every request must carry.
	MasterKey Secret `yaml:"master_key" json:"master_key,omitempty"`
	// RequireAuthForMetricsEndpoint makes /metrics need the master key too
	// (LiteLLM's name; off by default, as in LiteLLM).
	RequireAuthForMetricsEndpoint bool `yaml:"require_auth_for_metrics_endpoint" json:"require_auth_for_metrics_endpoint,omitempty"`
	// StoreModelInDB turns on the model management API's database.
	StoreModelInDB bool `yaml:"store_model_in_db" json:"store_model_in_db,omitempty"`
	// DatabaseURL is a postgres:// URL; empty means the embedded SQLite file.
	DatabaseURL Secret `yaml:"database_url" json:"database_url,omitempty"`

	Limits `yaml:",inline"`
}

// Provider returns the part of Model before the first "/": "openai",
// "auto_router", "local", "mock". A bare model name means "openai", as in
// LiteLLM.
func (p LiteLLMParams) Provider() string {
	if i := strings.IndexByte(p.Model, '/'); i > 0 {
		return p.Model[:i]
	}
	return "openai"
}

// UpstreamModel returns the model name sent upstream: Model without its
// provider prefix.
func (p LiteLLMParams) UpstreamModel() string {
	if i := strings.IndexByte(p.Model, '/'); i > 0 {
		return p.Model[i+1:]
	}
	return p.Model
}

// Providers autorouter knows by name; every other provider is spoken to as
// an OpenAI-compatible API at api_base.
const (
	ProviderAutoRouter = "auto_router"
	ProviderLocal      = "local"
	ProviderMock       = "mock"
	ProviderOpenAI     = "openai"
	// ProviderAnthropic speaks Anthropic's Messages API at api_base
	// (default https://api.anthropic.com/v1).
	ProviderAnthropic = "anthropic"
)

// IsAutoRouter reports whether the deployment is an auto router.
func (d *Deployment) IsAutoRouter() bool { return d.Params.Provider() == ProviderAutoRouter }

// IsEmbedder reports whether the deployment can embed text for an auto
// router: an in-process local model or an OpenAI-compatible endpoint.
func (d *Deployment) IsEmbedder() bool {
	switch d.Params.Provider() {
	case ProviderLocal, ProviderOpenAI:
		return true
	}
	return false
}

// Group returns the deployments sharing modelName, in model_list order, or
// nil. The slice and the deployments belong to the Config: read them only.
// It needs Prepare.
func (c *Config) Group(modelName string) []*Deployment { return c.groups[modelName] }

// ModelNames lists the distinct model_names in model_list order. The slice
// belongs to the Config. It needs Prepare.
func (c *Config) ModelNames() []string { return c.names }

// buildGroups indexes model_list by model_name.
func (c *Config) buildGroups() {
	c.groups = make(map[string][]*Deployment, len(c.ModelList))
	c.names = c.names[:0]
	for i := range c.ModelList {
		d := &c.ModelList[i]
		if _, ok := c.groups[d.ModelName]; !ok {
			c.names = append(c.names, d.ModelName)
		}
		c.groups[d.ModelName] = append(c.groups[d.ModelName], d)
	}
}

// AutoRouters returns the auto router deployments, in model_list order.
func (c *Config) AutoRouters() []*Deployment {
	var out []*Deployment
	for i := range c.ModelList {
		if c.ModelList[i].IsAutoRouter() {
			out = append(out, &c.ModelList[i])
		}
	}
	return out
}
