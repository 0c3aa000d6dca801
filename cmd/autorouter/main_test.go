package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDispatchUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"nope"}, {"route"}, {"eval", "--config", "x"}, {"model", "explode"}} {
		var out, errOut bytes.Buffer
		err := dispatch(context.Background(), args, &out, &errOut)
		var ue usageError
		if !errors.As(err, &ue) || exitCode(err) != 2 {
			t.Errorf("dispatch(%q) = %v; want a usage error (exit 2)", args, err)
		}
	}
}

// TestRouteAndEvalCLI runs the commands the README shows on the example
// config with the real local model.
func TestRouteAndEvalCLI(t *testing.T) {
	models, _ := filepath.Abs("../../models")
	if _, err := os.Stat(filepath.Join(models, "all-MiniLM-L6-v2", "model_int8.onnx")); err != nil {
		t.Fatalf("local model missing (%v); run scripts/setup.sh", err)
	}
	dir := t.TempDir()
	for _, f := range []string{"config.yaml", "router.json"} {
		b, err := os.ReadFile(filepath.Join("example", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	cfg := filepath.Join(dir, "config.yaml")
	common := []string{"--config", cfg, "--models", models, "--cache", filepath.Join(dir, "cache")}

	var out, errOut bytes.Buffer
	if err := dispatch(context.Background(), append(append([]string{"route"}, common...), "--json", "implement", "binary", "search", "in", "go"), &out, &errOut); err != nil {
		t.Fatalf("route: %v\n%s", err, errOut.String())
	}
	var d struct {
		Model  string  `json:"model"`
		Route  *string `json:"route"`
		Scores []any   `json:"scores"`
	}
	if err := json.Unmarshal(out.Bytes(), &d); err != nil || d.Model != "coder" || d.Route == nil || *d.Route != "coder" {
		t.Fatalf("route --json printed %s (%v)", out.String(), err)
	}

	data := filepath.Join(dir, "labelled.jsonl")
	os.WriteFile(data, []byte(`{"text": "write a haiku about snow", "route": "writer"}
{"text": "fix the null pointer exception in my java code", "route": "coder"}
{"text": "what is the integral of x squared", "route": "math"}
{"text": "what time does the post office close", "route": null}
`), 0o644)
	out.Reset()
	if err := dispatch(context.Background(), append(append([]string{"eval"}, common...), "--data", data, "--fit", "--write", "--json"), &out, &errOut); err != nil {
		t.Fatalf("eval: %v\n%s", err, errOut.String())
	}
	var rep struct {
		Before     struct{ InScope, OutOfScope int }
		After      struct{ InScopeAccuracy, OutOfScopeRecall float64 }
		Thresholds map[string]float32
		Written    string
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Before.InScope != 3 || rep.Before.OutOfScope != 1 {
		t.Fatalf("eval --json printed %s (%v)", out.String(), err)
	}
	if rep.After.InScopeAccuracy+rep.After.OutOfScopeRecall < 1.5 {
		t.Fatalf("fitted thresholds should get most of 4 easy rows right: %+v", rep.After)
	}
	// --write with --json must still save the thresholds it reports.
	if rep.Written != filepath.Join(dir, "router.json") {
		t.Fatalf("eval --fit --write --json reported written %q", rep.Written)
	}
	var saved struct {
		Routes []struct {
			Name           string   `json:"name"`
			ScoreThreshold *float32 `json:"score_threshold"`
		} `json:"routes"`
	}
	b, _ := os.ReadFile(rep.Written)
	if err := json.Unmarshal(b, &saved); err != nil || len(saved.Routes) != len(rep.Thresholds) {
		t.Fatalf("router.json after --write: %v, %d routes for %d thresholds", err, len(saved.Routes), len(rep.Thresholds))
	}
	for _, r := range saved.Routes {
		if r.ScoreThreshold == nil || *r.ScoreThreshold != rep.Thresholds[r.Name] {
			t.Errorf("route %q: saved threshold %v, fitted %v", r.Name, r.ScoreThreshold, rep.Thresholds[r.Name])
		}
	}

	os.WriteFile(data, []byte(`{"text": "x", "route": "not-a-route"}`+"\n"), 0o644)
	if err := dispatch(context.Background(), append(append([]string{"eval"}, common...), "--data", data), &out, &errOut); err == nil || !strings.Contains(err.Error(), `route "not-a-route"`) {
		t.Fatalf("eval with an unknown route: %v", err)
	}
}
