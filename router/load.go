package router

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// LoadOptions are the process facts LoadConfig needs; the caller (cmd)
// supplies them so that the package never reads the environment itself.
type LoadOptions struct {
	// LookupEnv resolves os.environ/VAR references. nil resolves none: any
	// reference is then an error.
	LookupEnv func(string) (string, bool)
	// Logger receives warnings about ignored keys. nil discards them.
	Logger *slog.Logger
}

// envPrefix marks a value LiteLLM reads from the environment.
const envPrefix = "os.environ/"

// LoadConfig reads a LiteLLM proxy config.yaml: it resolves os.environ/VAR
// references, decodes (warning about keys autorouter does not use), reads
// every auto router's router.json, and validates the whole.
func LoadConfig(path string, opts LoadOptions) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return ParseConfig(path, data, opts)
}

// ParseConfig is LoadConfig on bytes already read; path labels errors and
// anchors relative paths.
func ParseConfig(path string, data []byte, opts LoadOptions) (*Config, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: invalid YAML: %w", path, err)
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("%s: empty config: add a model_list", path)
	}
	if err := resolveEnv(root.Content[0], "", opts.LookupEnv); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	warnUnknownYAML(root.Content[0], reflect.TypeOf(Config{}), "", func(key string, line int) {
		logger.Warn("config: key not used by autorouter, ignored", "file", path, "key", key, "line", line)
	})
	cfg := &Config{Path: path}
	if err := root.Content[0].Decode(cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg.Path = path
	if err := cfg.loadRouters(logger); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// resolveEnv replaces every scalar "os.environ/VAR" below n with VAR's value.
func resolveEnv(n *yaml.Node, path string, lookup func(string) (string, bool)) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if !strings.HasPrefix(n.Value, envPrefix) {
			return nil
		}
		name := strings.TrimPrefix(n.Value, envPrefix)
		var v string
		ok := false
		if lookup != nil && name != "" {
			v, ok = lookup(name)
		}
		if !ok {
			return fmt.Errorf("%s (line %d): environment variable %s is not set; export it or put the value in the config", path, n.Line, name)
		}
		n.Value, n.Tag, n.Style = v, "!!str", 0
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := resolveEnv(n.Content[i+1], joinPath(path, n.Content[i].Value), lookup); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := resolveEnv(c, fmt.Sprintf("%s[%d]", path, i), lookup); err != nil {
				return err
			}
		}
	}
	return nil
}

func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// ignoredSections are LiteLLM blocks that autorouter accepts whole and does
// not act on; one note for the block, not one per key.
var ignoredSections = map[string]bool{"litellm_settings": true, "environment_variables": true}

// warnUnknownYAML reports mapping keys that have no field in t.
func warnUnknownYAML(n *yaml.Node, t reflect.Type, path string, warn func(string, int)) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag != "" && tag != "-" {
				fields[tag] = f.Type
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			switch {
			case ok:
				warnUnknownYAML(n.Content[i+1], ft, joinPath(path, k.Value), warn)
			case path == "" && ignoredSections[k.Value]:
				warn(k.Value+" (whole section)", k.Line)
			default:
				warn(joinPath(path, k.Value), k.Line)
			}
		}
	case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
		for i, c := range n.Content {
			warnUnknownYAML(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), warn)
		}
	}
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

// IsAutoRouter reports whether the deployment is an auto router.
func (d *Deployment) IsAutoRouter() bool { return d.Params.Provider() == "auto_router" }

// loadRouters reads the router.json (or inline auto_router_config) of every
// auto router.
func (c *Config) loadRouters(logger *slog.Logger) error {
	for i := range c.ModelList {
		d := &c.ModelList[i]
		if !d.IsAutoRouter() {
			continue
		}
		p := &d.Params
		switch {
		case p.AutoRouterConfigPath != "" && p.AutoRouterConfig != "":
			return fmt.Errorf("auto router %q: set auto_router_config_path or auto_router_config, not both", d.ModelName)
		case p.AutoRouterConfigPath != "":
			path := p.AutoRouterConfigPath
			if !filepath.IsAbs(path) && c.Path != "" {
				path = filepath.Join(filepath.Dir(c.Path), path)
			}
			rf, err := readRouterFile(path, logger)
			if err != nil {
				return fmt.Errorf("auto router %q: %w", d.ModelName, err)
			}
			d.Router = rf
		case p.AutoRouterConfig != "":
			rf, err := ParseRouterFile(fmt.Sprintf("auto router %q: auto_router_config", d.ModelName), []byte(p.AutoRouterConfig), logger)
			if err != nil {
				return err
			}
			d.Router = rf
		default:
			return fmt.Errorf("auto router %q: set auto_router_config_path to a router.json (or auto_router_config to its JSON)", d.ModelName)
		}
	}
	return nil
}

// Validate checks the config as a whole: every name a router refers to
// exists, thresholds are in range, and so on. Errors name the entry at fault.
func (c *Config) Validate() error {
	if len(c.ModelList) == 0 {
		return errors.New("model_list is empty: add at least one model")
	}
	groups := map[string]int{}
	for i, d := range c.ModelList {
		if d.ModelName == "" {
			return fmt.Errorf("model_list[%d]: model_name is empty", i)
		}
		if d.Params.Model == "" {
			return fmt.Errorf("model %q: litellm_params.model is empty; use e.g. openai/gpt-4o, local/all-MiniLM-L6-v2 or mock/test", d.ModelName)
		}
		groups[d.ModelName]++
	}
	for _, d := range c.ModelList {
		// Several deployments may share a model group, but an auto router's
		// name must be its own: requests to it are routed, not load-balanced.
		if d.IsAutoRouter() && groups[d.ModelName] > 1 {
			return fmt.Errorf("model %q: two entries with this name; an auto router's model_name must be unique in model_list", d.ModelName)
		}
	}
	for _, d := range c.ModelList {
		if !d.IsAutoRouter() {
			continue
		}
		p := d.Params
		where := fmt.Sprintf("auto router %q", d.ModelName)
		if d.Router != nil && d.Router.Path != "" {
			where += " (" + d.Router.Path + ")"
		}
		if p.AutoRouterDefaultModel == "" {
			return fmt.Errorf("%s: auto_router_default_model is missing; set it to a model_name from model_list", where)
		}
		if groups[p.AutoRouterDefaultModel] == 0 {
			return fmt.Errorf("%s: auto_router_default_model %q is not a model_name in model_list (have: %s)", where, p.AutoRouterDefaultModel, c.modelNames())
		}
		if p.AutoRouterEmbeddingModel == "" {
			return fmt.Errorf("%s: auto_router_embedding_model is missing; set it to an embedding model_name, e.g. one with model: local/all-MiniLM-L6-v2", where)
		}
		emb := c.Group(p.AutoRouterEmbeddingModel)
		if len(emb) == 0 {
			return fmt.Errorf("%s: auto_router_embedding_model %q is not a model_name in model_list (have: %s)", where, p.AutoRouterEmbeddingModel, c.modelNames())
		}
		switch emb[0].Params.Provider() {
		case "local", "openai":
		default:
			return fmt.Errorf("%s: embedding model %q has provider %q; want local/<model> or openai/<model>", where, p.AutoRouterEmbeddingModel, emb[0].Params.Provider())
		}
		if d.Router == nil {
			return fmt.Errorf("%s: no router config loaded", where)
		}
		if err := d.Router.Validate(); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		for _, r := range d.Router.Routes {
			if groups[r.Name] == 0 {
				return fmt.Errorf("%s: route %q has no model_list entry; its name must be the model_name requests go to (have: %s)", where, r.Name, c.modelNames())
			}
			if r.Name == d.ModelName {
				return fmt.Errorf("%s: route %q points back at the router itself", where, r.Name)
			}
		}
	}
	if s := c.RouterSettings.RoutingStrategy; s != "" && s != "simple-shuffle" && s != "least-busy" {
		return fmt.Errorf("router_settings.routing_strategy %q: want \"simple-shuffle\" or \"least-busy\"", s)
	}
	for _, fb := range c.RouterSettings.Fallbacks {
		for from, tos := range fb {
			if groups[from] == 0 {
				return fmt.Errorf("router_settings.fallbacks: %q is not a model_name in model_list", from)
			}
			for _, to := range tos {
				if groups[to] == 0 {
					return fmt.Errorf("router_settings.fallbacks: %q -> %q: %q is not a model_name in model_list", from, to, to)
				}
			}
		}
	}
	return nil
}

// Group returns the deployments sharing modelName, in config order.
func (c *Config) Group(modelName string) []Deployment {
	var out []Deployment
	for _, d := range c.ModelList {
		if d.ModelName == modelName {
			out = append(out, d)
		}
	}
	return out
}

// modelNames lists the distinct model_names for error messages.
func (c *Config) modelNames() string {
	var names []string
	seen := map[string]bool{}
	for _, d := range c.ModelList {
		if !seen[d.ModelName] {
			seen[d.ModelName] = true
			names = append(names, d.ModelName)
		}
	}
	return strings.Join(names, ", ")
}
