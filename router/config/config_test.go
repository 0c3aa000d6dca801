package config

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadFixtures(t *testing.T) {
	env := map[string]string{"OPENAI_API_KEY": "sk-from-env"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct {
		file string
		want string // substring of the error; "" for good files
	}{
		{"litellm_docs.good.yaml", ""},
		{"inline.good.yaml", ""},
		{"inline_mapping.good.yaml", ""},
		{"unknown_route.bad.yaml", `route "nope" has no model_list entry`},
		{"missing_default.bad.yaml", "auto_router_default_model is missing"},
		{"missing_embedding.bad.yaml", `auto_router_embedding_model "nothere" is not a model_name`},
		{"duplicate_router.bad.yaml", `model "auto": two entries with this name`},
		{"threshold.bad.yaml", `route "a": score_threshold 1.3 outside [0,1]`},
		{"no_utterances.bad.yaml", `route "a": no utterances`},
		{"unreadable_router.bad.yaml", "does-not-exist.json"},
		{"invalid_json.bad.yaml", "invalid JSON at line 1, column"},
		{"unset_env.bad.yaml", "environment variable AUTOROUTER_TEST_UNSET_VAR is not set"},
		{"routing_strategy.bad.yaml", `routing_strategy "round-robin-ish"`},
		{"model_info_type.bad.yaml", "line 6: cannot unmarshal !!str `true` into bool"},
		{"default_is_router.bad.yaml", `auto_router_default_model "emb" cannot answer chat requests`},
		{"too_many_utterances.bad.yaml", "3 utterances, more than the limit of 2 per router (general_settings.max_router_utterances)"},
		{"bad_limit.bad.yaml", "general_settings.max_connections -5"},
		{"bad_api_base.bad.yaml", `model "a": api_base "ftp//nowhere": want an http(s) URL`},
		{"bad_duration.bad.yaml", `invalid duration "soon"`},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			cfg, err := Load(path, Options{LookupEnv: lookup})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("want no error, got %v", err)
				}
				if cfg.Path != path {
					t.Errorf("Path = %q", cfg.Path)
				}
				return
			}
			if err == nil {
				t.Fatalf("want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file %s", err, path)
			}
		})
	}
}

func TestLiteLLMDocsConfig(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	cfg, err := Load("testdata/litellm_docs.good.yaml", Options{
		LookupEnv: func(k string) (string, bool) { return "sk-from-env", k == "OPENAI_API_KEY" }, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	emb := cfg.Group("custom-text-embedding-model")[0]
	if emb.Params.APIKey.Value() != "sk-from-env" || emb.Params.Provider() != "openai" || emb.Params.UpstreamModel() != "text-embedding-3-large" {
		t.Errorf("embedding entry = %+v", emb.Params)
	}
	auto := cfg.Group("auto_router1")[0]
	rf := auto.Params.AutoRouterConfig
	if rf == nil || len(rf.Routes) != 2 || *rf.Routes[0].ScoreThreshold != 0.5 {
		t.Fatalf("router.json not loaded: %+v", rf)
	}
	if !filepath.IsAbs(rf.Path) && !strings.HasPrefix(rf.Path, "testdata") {
		t.Errorf("router path %q not resolved against the config's directory", rf.Path)
	}
	if cfg.Group("litellm-gpt-4.1")[0].ModelInfo.ID != "openai-id" {
		t.Error("model_info.id not decoded")
	}
	if got := strings.Join(cfg.ModelNames(), ","); got != "custom-text-embedding-model,litellm-gpt-4.1,litellm-claude-35,auto_router1" {
		t.Errorf("ModelNames = %s", got)
	}
	out := logs.String()
	if !strings.Contains(out, "function_schemas and llm are accepted but ignored") {
		t.Errorf("no warning about ignored function_schemas/llm: %s", out)
	}
	if !strings.Contains(out, "litellm_settings") {
		t.Errorf("no note about ignored litellm_settings: %s", out)
	}
	if strings.Contains(out, "sk-from-env") || strings.Contains(out, "sk-1234") {
		t.Error("a key reached the logs")
	}
	if got := cfg.GeneralSettings.MasterKey.String(); got != "[redacted]" {
		t.Errorf("master key prints as %q", got)
	}
}

func TestUnknownKeysWarn(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte("model_list:\n  - model_name: a\n    litellm_params:\n      model: mock/a\n      temprature: 0.2\n    model_info:\n      base_model: x\nrouter_settings:\n  redis_hots: x\n"), 0o644)
	var logs bytes.Buffer
	cfg, err := Load(path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"model_list[0].litellm_params.temprature", "router_settings.redis_hots"} {
		if !strings.Contains(logs.String(), key) {
			t.Errorf("no warning for %s in %s", key, logs.String())
		}
	}
	if strings.Contains(logs.String(), "base_model") {
		t.Errorf("model_info keys are LiteLLM metadata, not warnings: %s", logs.String())
	}
	if cfg.ModelList[0].ModelInfo.Other["base_model"] != "x" {
		t.Errorf("model_info.base_model not kept: %+v", cfg.ModelList[0].ModelInfo)
	}
}

func TestInlineMappingRouter(t *testing.T) {
	cfg, err := Load("testdata/inline_mapping.good.yaml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	rf := cfg.Group("auto")[0].Params.AutoRouterConfig
	if len(rf.Routes) != 1 || len(rf.Routes[0].Utterances) != 2 || *rf.Routes[0].ScoreThreshold != 0.4 {
		t.Fatalf("routes = %+v", rf.Routes)
	}
	if !cfg.Group("emb")[0].ModelInfo.Quantized {
		t.Error("quantized: true not decoded")
	}
}

// TestBuiltInGo is the seed's model_list written as Go values, with the
// routes given as a value: Prepare readies it exactly as a file would be.
func TestBuiltInGo(t *testing.T) {
	threshold := 0.5
	cfg := &Config{ModelList: []Deployment{
		{ModelName: "minilm", Params: LiteLLMParams{Model: "local/all-MiniLM-L6-v2"}},
		{ModelName: "litellm-gpt-4.1", Params: LiteLLMParams{Model: "mock/gpt-4.1"}},
		{ModelName: "litellm-claude-35", Params: LiteLLMParams{Model: "mock/claude-3-5-sonnet"}},
		{ModelName: "gpt-4o-mini", Params: LiteLLMParams{Model: "mock/gpt-4o-mini"}},
		{ModelName: "auto_router1", Params: LiteLLMParams{
			Model: "auto_router/auto_router1",
			AutoRouterConfig: &RouterFile{Routes: []RouteSpec{
				{Name: "litellm-gpt-4.1", Utterances: []string{"litellm is great"}, ScoreThreshold: &threshold},
				{Name: "litellm-claude-35", Utterances: []string{"how to code a program in [language]"}, ScoreThreshold: &threshold},
			}},
			AutoRouterDefaultModel:   "gpt-4o-mini",
			AutoRouterEmbeddingModel: "minilm",
		}},
	}}
	if err := cfg.Prepare(Options{}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Prepare(Options{}); err != nil {
		t.Fatalf("a second Prepare: %v", err)
	}
	if len(cfg.AutoRouters()) != 1 || cfg.Group("auto_router1")[0].Source != SourceConfig {
		t.Fatalf("auto routers = %+v", cfg.AutoRouters())
	}
	cfg.ModelList[4].Params.AutoRouterDefaultModel = "gpt-4o-mnii"
	err := cfg.Prepare(Options{})
	if err == nil || !strings.Contains(err.Error(), `auto_router_default_model "gpt-4o-mnii" is not a model_name in model_list (have: litellm-gpt-4.1, litellm-claude-35, gpt-4o-mini)`) {
		t.Fatalf("typo: %v", err)
	}
}

func TestParamsJSON(t *testing.T) {
	// The management API's body: auto_router_config as a JSON string
	// (LiteLLM's UI) or as an object.
	for _, body := range []string{
		`{"model":"auto_router/x","auto_router_config":"{\"routes\":[{\"name\":\"a\",\"utterances\":[\"u\"],\"score_threshold\":0.5}]}"}`,
		`{"model":"auto_router/x","auto_router_config":{"routes":[{"name":"a","utterances":["u"],"score_threshold":0.5}]}}`,
	} {
		var p LiteLLMParams
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if p.AutoRouterConfig == nil || p.AutoRouterConfig.Routes[0].Name != "a" {
			t.Fatalf("%s: routes %+v", body, p.AutoRouterConfig)
		}
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var back map[string]any
		json.Unmarshal(out, &back)
		s, ok := back["auto_router_config"].(string)
		if !ok || !strings.Contains(s, `"utterances":["u"]`) {
			t.Fatalf("auto_router_config marshals as %v, want LiteLLM's JSON string", back["auto_router_config"])
		}
	}
	var p LiteLLMParams
	err := json.Unmarshal([]byte(`{"model":"auto_router/x","auto_router_config":"{\"routes\": [}"}`), &p)
	if err == nil || !strings.Contains(err.Error(), "invalid JSON at line 1") {
		t.Fatalf("bad inline JSON: %v", err)
	}
	p = LiteLLMParams{Model: "openai/x", APIKey: "sk-secret"}
	out, _ := json.Marshal(p)
	if strings.Contains(string(out), "sk-secret") || !strings.Contains(string(out), Redacted) {
		t.Fatalf("api_key not redacted: %s", out)
	}
}

func TestModelInfoJSON(t *testing.T) {
	var m ModelInfo
	if err := json.Unmarshal([]byte(`{"id":"x","quantized":true,"mock_delay":"200ms","description":"d","db_model":true}`), &m); err != nil {
		t.Fatal(err)
	}
	if m.ID != "x" || !m.Quantized || m.MockDelay.D() != 200*time.Millisecond || m.Other["description"] != "d" {
		t.Fatalf("decoded %+v", m)
	}
	out, _ := json.Marshal(m)
	for _, want := range []string{`"id":"x"`, `"quantized":true`, `"mock_delay":0.2`, `"description":"d"`, `"db_model":true`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("%s lacks %s", out, want)
		}
	}
	err := json.Unmarshal([]byte(`{"quantized":"true"}`), &m)
	if err == nil || !strings.Contains(err.Error(), "model_info: quantized: cannot use a JSON string here, want bool") {
		t.Fatalf("wrong type: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{{"30", "30s", true}, {"0.5", "500ms", true}, {"250ms", "250ms", true}, {"1m", "1m0s", true}, {"-1", "", false}, {"soon", "", false}, {"NaN", "", false}} {
		d, err := ParseDuration(tc.in)
		if (err == nil) != tc.ok || (tc.ok && d.D().String() != tc.want) {
			t.Errorf("ParseDuration(%q) = %v, %v", tc.in, d.D(), err)
		}
	}
}

func TestRouterFileTooLarge(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "r.json"), []byte(`{"routes":[{"name":"a","utterances":["`+strings.Repeat("x", 3000)+`"]}]}`), 0o644)
	os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(`
model_list:
  - {model_name: emb, litellm_params: {model: local/all-MiniLM-L6-v2}}
  - {model_name: a, litellm_params: {model: mock/a}}
  - model_name: auto
    litellm_params: {model: auto_router/auto, auto_router_config_path: r.json, auto_router_default_model: a, auto_router_embedding_model: emb}
general_settings:
  max_router_file_bytes: 1000
`), 0o644)
	_, err := Load(filepath.Join(dir, "c.yaml"), Options{})
	if err == nil || !strings.Contains(err.Error(), "larger than the limit of 1000 bytes (general_settings.max_router_file_bytes)") {
		t.Fatalf("got %v", err)
	}
}

// FuzzParse feeds arbitrary bytes to the config loader: it must return a
// config or an error, never panic.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"inline.good.yaml", "inline_mapping.good.yaml", "duplicate_router.bad.yaml", "threshold.bad.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("model_list: [{model_name: a, litellm_params: {model: mock/a, timeout: 1e400}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("", data, Options{})
		if err == nil && len(cfg.ModelList) == 0 {
			t.Fatal("a config without models was accepted")
		}
	})
}

// FuzzParseRouter does the same for router.json text.
func FuzzParseRouter(f *testing.F) {
	b, err := os.ReadFile("testdata/routerjson/litellm_docs_example.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"routes":[{"name":"a","utterances":["x"],"score_threshold":null}],"top_k":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rf, err := ParseRouter("r.json", data)
		if err != nil {
			return
		}
		_ = rf.Validate(Limits{})
		_ = rf.Clone()
	})
}
