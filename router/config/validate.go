package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Validate checks the config as a whole: every name a router refers to
// exists and can do its job, thresholds are in range, and so on. Errors
// name the entry at fault and say what valid looks like. It needs Prepare
// (which calls it).
func (c *Config) Validate() error {
	if len(c.ModelList) == 0 {
		return errors.New("model_list is empty: add at least one model")
	}
	if c.groups == nil {
		c.buildGroups()
	}
	ids := map[string]string{}
	for i := range c.ModelList {
		d := &c.ModelList[i]
		if err := d.validate(i); err != nil {
			return err
		}
		if id := d.ModelInfo.ID; id != "" {
			if other, ok := ids[id]; ok {
				return fmt.Errorf("model %q: model_info.id %q is also the id of model %q; ids must be unique", d.ModelName, id, other)
			}
			ids[id] = d.ModelName
		}
	}
	for _, d := range c.AutoRouters() {
		if err := c.validateRouter(d); err != nil {
			return err
		}
	}
	rs := c.RouterSettings
	if s := rs.RoutingStrategy; s != "" && s != "simple-shuffle" && s != "least-busy" {
		return fmt.Errorf("router_settings.routing_strategy %q: want \"simple-shuffle\" or \"least-busy\"", s)
	}
	if rs.NumRetries != nil && (*rs.NumRetries < 0 || *rs.NumRetries > 20) {
		return fmt.Errorf("router_settings.num_retries %d: want 0 to 20", *rs.NumRetries)
	}
	if rs.AllowedFails != nil && *rs.AllowedFails < 0 {
		return fmt.Errorf("router_settings.allowed_fails %d: want 0 or more", *rs.AllowedFails)
	}
	if rs.RedisURL != "" {
		if u, err := url.Parse(rs.RedisURL.Value()); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			return errors.New("router_settings.redis_url: want a redis://host:port URL (the value is not shown because it may hold a password)")
		}
	}
	if rs.RedisPort < 0 || rs.RedisPort > 65535 {
		return fmt.Errorf("router_settings.redis_port %d: want a TCP port", rs.RedisPort)
	}
	for _, fb := range rs.Fallbacks {
		for from, tos := range fb {
			if !c.servable(from) {
				return fmt.Errorf("router_settings.fallbacks: %q is not a chat model in model_list (have: %s)", from, c.chatNames())
			}
			for _, to := range tos {
				if !c.servable(to) {
					return fmt.Errorf("router_settings.fallbacks: %q -> %q: %q is not a chat model in model_list (have: %s)", from, to, to, c.chatNames())
				}
			}
		}
	}
	return nil
}

// validate checks one deployment on its own.
func (d *Deployment) validate(i int) error {
	if d.ModelName == "" {
		return fmt.Errorf("model_list[%d]: model_name is empty", i)
	}
	if strings.TrimSpace(d.ModelName) != d.ModelName || len(d.ModelName) > 256 {
		return fmt.Errorf("model_list[%d]: model_name %q must not start or end with spaces and must be at most 256 bytes", i, d.ModelName)
	}
	p := d.Params
	if p.Model == "" {
		return fmt.Errorf("model %q: litellm_params.model is empty; use e.g. openai/gpt-4o, local/all-MiniLM-L6-v2 or mock/test", d.ModelName)
	}
	if p.MaxRetries != nil && (*p.MaxRetries < 0 || *p.MaxRetries > 20) {
		return fmt.Errorf("model %q: litellm_params.max_retries %d: want 0 to 20", d.ModelName, *p.MaxRetries)
	}
	switch p.Provider() {
	case ProviderAutoRouter, ProviderMock:
	case ProviderLocal:
		if p.UpstreamModel() == "" && p.ModelPath == "" {
			return fmt.Errorf("model %q: local model has no name; write local/all-MiniLM-L6-v2 or set model_path", d.ModelName)
		}
	default:
		if p.APIBase != "" {
			u, err := url.Parse(p.APIBase)
			if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
				return fmt.Errorf("model %q: api_base %q: want an http(s) URL such as https://api.openai.com/v1", d.ModelName, p.APIBase)
			}
		}
	}
	if s := d.ModelInfo.MockStatus; s != 0 && (s < 100 || s > 599) {
		return fmt.Errorf("model %q: model_info.mock_status %d: want an HTTP status (100-599)", d.ModelName, s)
	}
	if d.ModelInfo.MaxBatch < 0 || d.ModelInfo.MaxBatch > 4096 {
		return fmt.Errorf("model %q: model_info.max_batch %d: want 1 to 4096", d.ModelName, d.ModelInfo.MaxBatch)
	}
	return nil
}

// validateRouter checks an auto router against the model list.
func (c *Config) validateRouter(d *Deployment) error {
	p := d.Params
	where := fmt.Sprintf("auto router %q", d.ModelName)
	if rf := p.AutoRouterConfig; rf != nil && rf.Path != "" {
		where += " (" + rf.Path + ")"
	}
	// Several deployments may share a model group, but an auto router's
	// name must be its own: requests to it are routed, not load-balanced.
	if len(c.groups[d.ModelName]) > 1 {
		return fmt.Errorf("model %q: two entries with this name; an auto router's model_name must be unique in model_list", d.ModelName)
	}
	if p.AutoRouterDefaultModel == "" {
		return fmt.Errorf("%s: auto_router_default_model is missing; set it to a model_name from model_list", where)
	}
	if len(c.groups[p.AutoRouterDefaultModel]) == 0 {
		return fmt.Errorf("%s: auto_router_default_model %q is not a model_name in model_list (have: %s)", where, p.AutoRouterDefaultModel, c.chatNames())
	}
	if !c.servable(p.AutoRouterDefaultModel) {
		return fmt.Errorf("%s: auto_router_default_model %q cannot answer chat requests (it is an auto router or a local embedding model); pick one of: %s", where, p.AutoRouterDefaultModel, c.chatNames())
	}
	if p.AutoRouterEmbeddingModel == "" {
		return fmt.Errorf("%s: auto_router_embedding_model is missing; set it to an embedding model_name, e.g. one with model: local/all-MiniLM-L6-v2", where)
	}
	emb := c.groups[p.AutoRouterEmbeddingModel]
	if len(emb) == 0 {
		return fmt.Errorf("%s: auto_router_embedding_model %q is not a model_name in model_list (have: %s)", where, p.AutoRouterEmbeddingModel, strings.Join(c.names, ", "))
	}
	if !emb[0].IsEmbedder() {
		return fmt.Errorf("%s: embedding model %q has provider %q; want local/<model> or openai/<model>", where, p.AutoRouterEmbeddingModel, emb[0].Params.Provider())
	}
	rf := p.AutoRouterConfig
	if rf == nil {
		return fmt.Errorf("%s: no routes loaded", where)
	}
	if err := rf.Validate(c.GeneralSettings.Limits); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	for _, r := range rf.Routes {
		if r.Name == d.ModelName {
			return fmt.Errorf("%s: route %q points back at the router itself", where, r.Name)
		}
		if len(c.groups[r.Name]) == 0 {
			return fmt.Errorf("%s: route %q has no model_list entry; its name must be the model_name requests go to (have: %s)", where, r.Name, c.chatNames())
		}
		if !c.servable(r.Name) {
			return fmt.Errorf("%s: route %q goes to a model that cannot answer chat requests (an auto router or a local embedding model); pick one of: %s", where, r.Name, c.chatNames())
		}
	}
	return nil
}

// servable reports whether name is a model group requests can be sent to:
// not an auto router and not an in-process embedding model.
func (c *Config) servable(name string) bool {
	g := c.groups[name]
	if len(g) == 0 {
		return false
	}
	switch g[0].Params.Provider() {
	case ProviderAutoRouter, ProviderLocal:
		return false
	}
	return true
}

// chatNames lists the groups requests can be sent to, for error messages.
func (c *Config) chatNames() string {
	var out []string
	for _, n := range c.names {
		if c.servable(n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return "none; add a chat model such as openai/gpt-4o-mini or mock/test"
	}
	return strings.Join(out, ", ")
}
