package router

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadConfigFixtures(t *testing.T) {
	env := map[string]string{"OPENAI_API_KEY": "sk-from-env"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct {
		file string
		want string // substring of the error; "" for good files
	}{
		{"litellm_docs.good.yaml", ""},
		{"inline.good.yaml", ""},
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
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", "config", tc.file)
			cfg, err := LoadConfig(path, LoadOptions{LookupEnv: lookup})
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
	cfg, err := LoadConfig("testdata/config/litellm_docs.good.yaml", LoadOptions{
		LookupEnv: func(k string) (string, bool) { return "sk-from-env", k == "OPENAI_API_KEY" }, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	emb := cfg.Group("custom-text-embedding-model")[0]
	if emb.Params.APIKey.Value() != "sk-from-env" || emb.Params.Provider() != "openai" || emb.Params.UpstreamModel() != "text-embedding-3-large" {
		t.Errorf("embedding entry = %+v", emb.Params)
	}
	auto := cfg.Group("auto_router1")[0]
	if auto.Router == nil || len(auto.Router.Routes) != 2 || *auto.Router.Routes[0].ScoreThreshold != 0.5 {
		t.Fatalf("router.json not loaded: %+v", auto.Router)
	}
	if fmt := auto.Params.APIKey.String(); fmt != "" {
		t.Errorf("unset secret prints %q", fmt)
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
	os.WriteFile(path, []byte("model_list:\n  - model_name: a\n    litellm_params:\n      model: mock/a\n      temprature: 0.2\nrouter_settings:\n  redis_host: x\n"), 0o644)
	var logs bytes.Buffer
	if _, err := LoadConfig(path, LoadOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"model_list[0].litellm_params.temprature", "router_settings.redis_host"} {
		if !strings.Contains(logs.String(), key) {
			t.Errorf("no warning for %s in %s", key, logs.String())
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{{"30", "30s", true}, {"0.5", "500ms", true}, {"250ms", "250ms", true}, {"1m", "1m0s", true}, {"-1", "", false}, {"soon", "", false}} {
		d, err := ParseDuration(tc.in)
		if (err == nil) != tc.ok || (tc.ok && d.D().String() != tc.want) {
			t.Errorf("ParseDuration(%q) = %v, %v", tc.in, d.D(), err)
		}
	}
}
