package eval

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/config"
)

func TestFitOutOfScopeWeight(t *testing.T) {
	// Four in-scope rows of route a and one out-of-scope row scoring in
	// their middle: catching it costs two of the four.
	var ex []Example
	for _, s := range []float32{0.60, 0.62, 0.64, 0.66} {
		ex = append(ex, Example{Scores: []router.RouteScore{{Route: "a", Score: s, Threshold: 0.5}}, Gold: "a"})
	}
	ex = append(ex, Example{Scores: []router.RouteScore{{Route: "a", Score: 0.63, Threshold: 0.5}}})
	for _, tc := range []struct {
		name           string
		weight         float64
		wantIn, wantOu float64
	}{
		{"default: keeps the current recall (none)", 0, 1, 0},
		{"rates count the same", 1, 0.5, 1},
		{"out-of-scope worth little", 0.1, 1, 0},
		{"out-of-scope worth much", 3, 0.5, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, global := range []bool{true, false} {
				th, r := Fit(ex, []string{"a"}, FitOptions{GlobalOnly: global, OutOfScopeWeight: tc.weight})
				if r.InScopeAccuracy != tc.wantIn || r.OutOfScopeRecall != tc.wantOu {
					t.Errorf("global=%v: threshold %v gives %.2f in-scope, %.2f out-of-scope; want %.2f, %.2f", global, th["a"], r.InScopeAccuracy, r.OutOfScopeRecall, tc.wantIn, tc.wantOu)
				}
			}
		})
	}
}

func TestEvaluateAndFit(t *testing.T) {
	rs := func(pairs ...any) []router.RouteScore {
		var out []router.RouteScore
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, router.RouteScore{Route: pairs[i].(string), Score: float32(pairs[i+1].(float64)), Threshold: 0.5})
		}
		return out
	}
	ex := []Example{
		{rs("a", 0.9), "a"},
		{rs("a", 0.45), "a"},            // misses a 0.5 threshold
		{rs("b", 0.7, "a", 0.6), "b"},   // b first
		{rs("b", 0.55, "a", 0.52), "a"}, // confused: b wins
		{rs("a", 0.48), ""},             // out of scope, falls back at 0.5
		{rs("b", 0.6), ""},              // out of scope, wrongly routed at 0.5
	}
	r := Evaluate(ex, nil)
	if r.InScope != 4 || r.OutOfScope != 2 || r.InScopeAccuracy != 0.5 || r.OutOfScopeRecall != 0.5 {
		t.Fatalf("report %+v", r)
	}
	if q := r.PerRoute["a"]; q.Support != 3 || math.Abs(q.Recall-1.0/3) > 1e-9 || q.Precision != 1 {
		t.Fatalf("route a %+v", q)
	}
	if len(r.Confused) == 0 || r.Confused[0].Count != 1 {
		t.Fatalf("confused %+v", r.Confused)
	}
	gth, global := Fit(ex, []string{"a", "b"}, FitOptions{GlobalOnly: true})
	if gth["a"] != gth["b"] || global.InScopeAccuracy+global.OutOfScopeRecall < r.InScopeAccuracy+r.OutOfScopeRecall {
		t.Fatalf("global fit %v gave %+v", gth, global)
	}
	th, fit := Fit(ex, []string{"a", "b"}, FitOptions{})
	// a at 0.45 catches the second example but also the 0.48 out-of-scope
	// one; b above 0.6 drops the out-of-scope b and lets the confused
	// example fall through to a (0.52).
	if fit.InScopeAccuracy+fit.OutOfScopeRecall <= r.InScopeAccuracy+r.OutOfScopeRecall {
		t.Fatalf("fit %+v with %v did not improve on %+v", fit, th, r)
	}
	if th["b"] <= 0.6 {
		t.Fatalf("b threshold %v should rise above the out-of-scope 0.6", th["b"])
	}
}

func TestWriteThresholdsKeepsFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "router.json")
	src, _ := os.ReadFile("../config/testdata/routerjson/litellm_docs_example.json")
	os.WriteFile(path, src, 0o644)
	if err := WriteThresholds(path, map[string]float32{"litellm-gpt-4.1": 0.42}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	rf, err := config.ParseRouter(path, data)
	if err != nil {
		t.Fatal(err)
	}
	if *rf.Routes[0].ScoreThreshold != 0.42 || *rf.Routes[1].ScoreThreshold != 0.5 {
		t.Fatalf("thresholds %v %v", *rf.Routes[0].ScoreThreshold, *rf.Routes[1].ScoreThreshold)
	}
	if rf.EncoderName != "text-embedding-3-large" || *rf.Routes[1].Description != "coding assistant" || string(rf.Routes[0].Metadata) != "{}" {
		t.Fatalf("fields lost: %+v", rf)
	}
}
