package config

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Options are the process facts loading needs; the caller (cmd) supplies
// them so that the package never reads the environment itself.
type Options struct {
	// LookupEnv resolves os.environ/VAR references. nil resolves none: any
	// reference is then an error.
	LookupEnv func(string) (string, bool)
	// Logger receives warnings about ignored keys. nil discards them.
	Logger *slog.Logger
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// EnvPrefix marks a value LiteLLM reads from the environment.
const EnvPrefix = "os.environ/"

// maxConfigBytes bounds config.yaml itself; its routes belong in router.json.
const maxConfigBytes = 64 << 20

// Load reads a LiteLLM proxy config.yaml: it resolves os.environ/VAR
// references, decodes (warning about keys autorouter does not use), reads
// every auto router's router.json, and validates the whole. Errors name the
// file and the entry at fault.
func Load(path string, opts Options) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes; keep routes in router.json files", path, maxConfigBytes)
	}
	return Parse(path, data, opts)
}

// Parse is Load on bytes already read; path labels errors and anchors
// relative paths ("" for none).
func Parse(path string, data []byte, opts Options) (*Config, error) {
	label := path
	if label == "" {
		label = "config"
	}
	logger := opts.logger()
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: invalid YAML: %w", label, err)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: empty config: add a model_list", label)
	}
	if err := resolveEnvNode(root.Content[0], "", opts.LookupEnv); err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	warnUnknownYAML(root.Content[0], reflect.TypeOf(Config{}), "", func(key string, line int) {
		logger.Warn("config: key not used by autorouter, ignored", "file", label, "key", key, "line", line)
	})
	cfg := &Config{}
	if err := root.Content[0].Decode(cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	cfg.Path = path
	for i := range cfg.ModelList {
		cfg.ModelList[i].Source = SourceConfig
	}
	if err := cfg.Prepare(opts); err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	return cfg, nil
}

// Prepare readies a decoded or hand-built config: it resolves os.environ/
// references in model_list, reads each auto router's router.json (or takes
// its inline auto_router_config), makes relative paths absolute against the
// config file's directory, builds the model-name lookup and validates.
// Load and Parse call it; router.New calls it on configs built in Go. It may
// be called again on a prepared config.
func (c *Config) Prepare(opts Options) error {
	logger := opts.logger()
	if err := c.GeneralSettings.Limits.Validate(); err != nil {
		return err
	}
	base := ""
	if c.Path != "" {
		base = filepath.Dir(c.Path)
	}
	for i := range c.ModelList {
		d := &c.ModelList[i]
		if d.Source == "" {
			d.Source = SourceConfig
		}
		if err := resolveEnvParams(&d.Params, d.ModelName, opts.LookupEnv); err != nil {
			return err
		}
		if p := d.Params.ModelPath; p != "" && !filepath.IsAbs(p) && base != "" {
			d.Params.ModelPath = filepath.Join(base, p)
		}
		if !d.IsAutoRouter() {
			continue
		}
		if err := c.loadRoutes(d, base, logger); err != nil {
			return err
		}
	}
	c.buildGroups()
	return c.Validate()
}

// loadRoutes fills an auto router's AutoRouterConfig from its file.
func (c *Config) loadRoutes(d *Deployment, base string, logger *slog.Logger) error {
	p := &d.Params
	path := p.AutoRouterConfigPath
	if path != "" && !filepath.IsAbs(path) && base != "" {
		path = filepath.Join(base, path)
	}
	switch {
	case path != "" && p.AutoRouterConfig != nil && p.AutoRouterConfig.Path == path:
		return nil // loaded by an earlier Prepare
	case path != "" && p.AutoRouterConfig != nil:
		return fmt.Errorf("auto router %q: set auto_router_config_path or auto_router_config, not both", d.ModelName)
	case path != "":
		rf, err := readRouterFile(path, c.GeneralSettings.Limits)
		if err != nil {
			return fmt.Errorf("auto router %q: %w", d.ModelName, err)
		}
		p.AutoRouterConfig = rf
	case p.AutoRouterConfig == nil:
		return fmt.Errorf("auto router %q: set auto_router_config_path to a router.json (or auto_router_config to its JSON)", d.ModelName)
	}
	rf := p.AutoRouterConfig
	where := rf.Path
	if where == "" {
		where = "auto_router_config"
	}
	for _, k := range rf.unknown {
		logger.Warn("router.json: unknown key ignored", "router", d.ModelName, "file", where, "key", k)
	}
	for _, r := range rf.Routes {
		if len(r.FunctionSchemas) > 0 || len(r.LLM) > 0 {
			logger.Warn("router.json: function_schemas and llm are accepted but ignored (LiteLLM ignores them too)", "router", d.ModelName, "file", where)
			break
		}
	}
	rf.unknown = nil
	return nil
}

// resolveEnvNode replaces every scalar "os.environ/VAR" below n with VAR's value.
func resolveEnvNode(n *yaml.Node, path string, lookup func(string) (string, bool)) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if !strings.HasPrefix(n.Value, EnvPrefix) {
			return nil
		}
		v, err := lookupEnv(n.Value, lookup)
		if err != nil {
			return fmt.Errorf("%s (line %d): %w", path, n.Line, err)
		}
		n.Value, n.Tag, n.Style = v, "!!str", 0
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := resolveEnvNode(n.Content[i+1], joinPath(path, n.Content[i].Value), lookup); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := resolveEnvNode(c, fmt.Sprintf("%s[%d]", path, i), lookup); err != nil {
				return err
			}
		}
	}
	return nil
}

func lookupEnv(ref string, lookup func(string) (string, bool)) (string, error) {
	name := strings.TrimPrefix(ref, EnvPrefix)
	if lookup != nil && name != "" {
		if v, ok := lookup(name); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("environment variable %s is not set; export it or put the value in the config", name)
}

// resolveEnvParams resolves os.environ/ references in the string fields of
// litellm_params, as set in Go or through the management API.
func resolveEnvParams(p *LiteLLMParams, model string, lookup func(string) (string, bool)) error {
	v := reflect.ValueOf(p).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := v.Field(i)
		if f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.String && !f.IsNil() {
			f = f.Elem()
		}
		if f.Kind() != reflect.String || !strings.HasPrefix(f.String(), EnvPrefix) {
			continue
		}
		val, err := lookupEnv(f.String(), lookup)
		if err != nil {
			key := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			return fmt.Errorf("model %q: litellm_params.%s: %w", model, key, err)
		}
		f.SetString(val)
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

// warnUnknownYAML reports mapping keys that have no field in t. A struct's
// inline map (ModelInfo.Other) takes any key, and an inline struct's fields
// count as the parent's.
func warnUnknownYAML(n *yaml.Node, t reflect.Type, path string, warn func(string, int)) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		fields := map[string]reflect.Type{}
		anyKey := false
		var collect func(t reflect.Type)
		collect = func(t reflect.Type) {
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				parts := strings.Split(f.Tag.Get("yaml"), ",")
				switch {
				case len(parts) > 1 && parts[1] == "inline" && f.Type.Kind() == reflect.Map:
					anyKey = true
				case len(parts) > 1 && parts[1] == "inline":
					collect(f.Type)
				case parts[0] != "" && parts[0] != "-":
					fields[parts[0]] = f.Type
				}
			}
		}
		collect(t)
		if _, ok := reflect.New(t).Interface().(yaml.Unmarshaler); ok {
			return // decoded by its own rules
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			switch {
			case ok:
				warnUnknownYAML(n.Content[i+1], ft, joinPath(path, k.Value), warn)
			case anyKey:
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
