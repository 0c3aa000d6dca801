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

// TestEvalFitFlagErrors: bad fit flags are usage errors naming the
// problem, found before any file is read or model loaded.
func TestEvalFitFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"target without --fit", []string{"--min-oos-recall", "0.75"}, "--min-oos-recall needs --fit"},
		{"folds without --fit", []string{"--folds", "10"}, "--folds needs --fit"},
		{"plot is fine, write is not", []string{"--plot", "x.svg", "--write"}, "--write needs --fit"},
		{"recall as a percentage", []string{"--fit", "--min-oos-recall", "75"}, "share in (0,1]"},
		{"two targets", []string{"--fit", "--min-oos-recall", "0.7", "--min-accuracy", "0.9"}, "cannot both"},
		{"weight and target", []string{"--fit", "--oos-weight", "1", "--min-accuracy", "0.9"}, "cannot both"},
		{"negative weight", []string{"--fit", "--oos-weight", "-1"}, "out-of-scope weight"},
		{"certain confidence", []string{"--fit", "--min-accuracy", "0.9", "--confidence", "1"}, "confidence"},
		{"negative prior", []string{"--fit", "--prior-rows", "-5"}, "prior rows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := append([]string{"eval", "--config", "missing.yaml", "--data", "missing.jsonl"}, tc.args...)
			err := dispatch(context.Background(), args, &out, &errOut)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("eval %q = %v; want a usage error containing %q", tc.args, err, tc.want)
			}
		})
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

	// An operating point with a cross-validated estimate, the curve and
	// its plot, as JSON and as text.
	plot := filepath.Join(dir, "curve.svg")
	out.Reset()
	if err := dispatch(context.Background(), append(append([]string{"eval"}, common...), "--data", data, "--fit", "--min-oos-recall", "0.5", "--confidence", "0.5", "--folds", "2", "--curve", "--plot", plot, "--json"), &out, &errOut); err != nil {
		t.Fatalf("eval --min-oos-recall: %v\n%s", err, errOut.String())
	}
	var op struct {
		After          struct{ InScopeAccuracy, OutOfScopeRecall float64 }
		CrossValidated *struct{ InScope, OutOfScope int } `json:"cross_validated"`
		Fit            struct {
			Objective string `json:"objective"`
			TargetMet bool   `json:"target_met"`
			Folds     int    `json:"folds"`
		}
		Curve []struct {
			Threshold        float32 `json:"threshold"`
			OutOfScopeRecall float64 `json:"out_of_scope_recall"`
		}
		Plot string
	}
	if err := json.Unmarshal(out.Bytes(), &op); err != nil {
		t.Fatalf("eval --fit --min-oos-recall --json printed %s (%v)", out.String(), err)
	}
	if !strings.Contains(op.Fit.Objective, "out-of-scope recall ≥ 50.0%") || !op.Fit.TargetMet || op.After.OutOfScopeRecall < 0.5 {
		t.Errorf("fit %+v, after %+v: want the recall minimum met", op.Fit, op.After)
	}
	if op.CrossValidated == nil || op.CrossValidated.InScope != 3 || op.CrossValidated.OutOfScope != 1 || op.Fit.Folds != 2 {
		t.Errorf("cross-validated %+v over %d folds: want all 4 rows routed out of fold", op.CrossValidated, op.Fit.Folds)
	}
	if len(op.Curve) != 201 || op.Curve[200].Threshold != 1 || op.Curve[200].OutOfScopeRecall != 1 {
		t.Errorf("curve of %d points", len(op.Curve))
	}
	if b, err := os.ReadFile(plot); err != nil || !bytes.HasPrefix(b, []byte("<svg")) || !bytes.Contains(b, []byte("fitted, cross-validated")) || op.Plot != plot {
		t.Errorf("plot %q (reported %q): %v", b[:min(len(b), 80)], op.Plot, err)
	}
	out.Reset()
	if err := dispatch(context.Background(), append(append([]string{"eval"}, common...), "--data", data, "--fit", "--fit-global", "--min-accuracy", "0.6", "--folds", "2", "--curve"), &out, &errOut); err != nil {
		t.Fatalf("eval --min-accuracy: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{"== fitted thresholds", "objective: maximise out-of-scope recall with in-scope accuracy ≥ 60.0%", "one threshold for every route", "cross-validated (2-fold", "THRESHOLD"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("eval text output lacks %q:\n%s", want, out.String())
		}
	}

	os.WriteFile(data, []byte(`{"text": "x", "route": "not-a-route"}`+"\n"), 0o644)
	if err := dispatch(context.Background(), append(append([]string{"eval"}, common...), "--data", data), &out, &errOut); err == nil || !strings.Contains(err.Error(), `route "not-a-route"`) {
		t.Fatalf("eval with an unknown route: %v", err)
	}
}
