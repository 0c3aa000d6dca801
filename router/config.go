package router

// Config is a LiteLLM proxy config.yaml. Only the fields autorouter acts on are
// typed; LiteLLM settings it does not use are accepted and reported once as
// ignored, so a LiteLLM file loads as it is.
type Config struct {
	ModelList       []Deployment    `yaml:"model_list"`
	RouterSettings  RouterSettings  `yaml:"router_settings"`
	GeneralSettings GeneralSettings `yaml:"general_settings"`

	// Path is the file the config was loaded from; relative router.json and
	// model paths resolve against its directory. Empty for in-memory configs.
	Path string `yaml:"-"`
}

// Deployment is one model_list entry. Several entries may share a ModelName;
// together they form a model group that the proxy load-balances over.
type Deployment struct {
	ModelName string         `yaml:"model_name"`
	Params    LiteLLMParams  `yaml:"litellm_params"`
	ModelInfo map[string]any `yaml:"model_info"`

	// Router is the parsed router.json of an auto router; nil otherwise.
	Router *RouterFile `yaml:"-"`
}

// LiteLLMParams is a deployment's litellm_params block.
type LiteLLMParams struct {
	// Model is "<provider>/<name>": openai/gpt-4o, auto_router/<id>,
	// local/all-MiniLM-L6-v2 (the in-process ONNX encoder) or mock/<anything>.
	// A bare name (text-embedding-3-large) means the openai provider, as in LiteLLM.
	Model   string `yaml:"model"`
	APIBase string `yaml:"api_base"`
	APIKey  Secret `yaml:"api_key"`
	// Timeout bounds one upstream attempt. LiteLLM writes seconds as a number;
	// a Go duration string ("30s") is accepted too. Zero means the proxy default.
	Timeout Duration `yaml:"timeout"`
	// MaxRetries overrides router_settings.num_retries for this deployment; nil
	// means inherit.
	MaxRetries *int `yaml:"max_retries"`

	// ModelPath is the directory of a local ONNX model (model.onnx plus
	// tokenizer.json). Empty means models/<name> under the models directory.
	ModelPath string `yaml:"model_path"`

	// MockResponse is the fixed reply of a mock/ deployment (LiteLLM's name).
	MockResponse *string `yaml:"mock_response"`

	AutoRouterConfigPath     string `yaml:"auto_router_config_path"`
	AutoRouterConfig         string `yaml:"auto_router_config"`
	AutoRouterDefaultModel   string `yaml:"auto_router_default_model"`
	AutoRouterEmbeddingModel string `yaml:"auto_router_embedding_model"`
}

// RouterSettings is LiteLLM's router_settings block.
type RouterSettings struct {
	// NumRetries is how often a failed upstream call (429, 5xx, connection
	// error) is retried on the same model group; nil means the proxy's default.
	NumRetries *int `yaml:"num_retries"`
	// RoutingStrategy picks a deployment within a model group:
	// "simple-shuffle" (default) or "least-busy".
	RoutingStrategy string `yaml:"routing_strategy"`
	// Fallbacks maps a model group to the groups tried, in order, once its own
	// retries are exhausted: [{"gpt-4o": ["gpt-4o-mini"]}].
	Fallbacks []map[string][]string `yaml:"fallbacks"`
	// AllowedFails is how many failures in a row put a deployment on cooldown.
	AllowedFails *int `yaml:"allowed_fails"`
	// CooldownTime is how long a failing deployment is skipped.
	CooldownTime Duration `yaml:"cooldown_time"`
	// Timeout is the default per-attempt upstream timeout.
	Timeout Duration `yaml:"timeout"`
}

// GeneralSettings is LiteLLM's general_settings block.
type GeneralSettings struct {
	// MasterKey, when set, is the bearer token every request must carry.
	MasterKey Secret `yaml:"master_key"`
}
