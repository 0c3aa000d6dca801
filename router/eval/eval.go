// Package eval measures routing quality on labelled prompts (in-scope
// accuracy, out-of-scope recall, per-route precision and recall), fits
// score thresholds to them at an operating point (fit.go), estimates the
// fit by cross-validation, and sweeps and plots the trade-off between the
// two rates (curve.go). It is offline tooling for 'autorouter eval', the
// bench and the admin page; the serving path never imports it.
package eval

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/google/renameio/v2"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/config"
)

// Example is one labelled prompt with every candidate route's score.
type Example struct {
	Scores []router.RouteScore
	// Gold is the route the prompt should go to; "" means no route should
	// match and the default model should answer.
	Gold string
}

// Report summarises routing quality on labelled data.
type Report struct {
	InScope, OutOfScope int
	// InScopeAccuracy is the share of in-scope prompts sent to their route.
	InScopeAccuracy float64
	// OutOfScopeRecall is the share of out-of-scope prompts that fell back.
	OutOfScopeRecall float64
	PerRoute         map[string]RouteQuality
	// Confused are the most frequent (gold, predicted) mistakes; predicted
	// "" means the prompt fell back.
	Confused []Confusion
}

// RouteQuality is one route's precision and recall.
type RouteQuality struct {
	Precision, Recall float64
	Support           int
}

// Confusion counts prompts of route Gold that went to Predicted.
type Confusion struct {
	Gold, Predicted string
	Count           int
}

// predict applies the first-passing-route rule with the given thresholds
// (nil: each score's own threshold).
func predict(ex Example, th map[string]float32) string {
	for _, s := range ex.Scores {
		t, ok := th[s.Route]
		if !ok {
			t = s.Threshold
		}
		if s.Score >= t {
			return s.Route
		}
	}
	return ""
}

// Evaluate scores examples under thresholds (nil: the routes' own).
func Evaluate(examples []Example, thresholds map[string]float32) Report {
	preds := make([]string, len(examples))
	for i, ex := range examples {
		preds[i] = predict(ex, thresholds)
	}
	return evaluatePredicted(examples, preds)
}

// evaluatePredicted is Evaluate of given predictions, preds[i] being where
// examples[i] went ("" fell back).
func evaluatePredicted(examples []Example, preds []string) Report {
	r := Report{PerRoute: map[string]RouteQuality{}}
	correct, fellBack := 0, 0
	predicted, support, hits := map[string]int{}, map[string]int{}, map[string]int{}
	confused := map[[2]string]int{}
	for i, ex := range examples {
		p := preds[i]
		if ex.Gold == "" {
			r.OutOfScope++
			if p == "" {
				fellBack++
			}
		} else {
			r.InScope++
			support[ex.Gold]++
			if p == ex.Gold {
				correct++
				hits[ex.Gold]++
			}
		}
		if p != "" {
			predicted[p]++
		}
		if p != ex.Gold {
			confused[[2]string{ex.Gold, p}]++
		}
	}
	if r.InScope > 0 {
		r.InScopeAccuracy = float64(correct) / float64(r.InScope)
	}
	if r.OutOfScope > 0 {
		r.OutOfScopeRecall = float64(fellBack) / float64(r.OutOfScope)
	}
	for route, n := range support {
		q := RouteQuality{Support: n, Recall: float64(hits[route]) / float64(n)}
		if predicted[route] > 0 {
			q.Precision = float64(hits[route]) / float64(predicted[route])
		}
		r.PerRoute[route] = q
	}
	for k, n := range confused {
		r.Confused = append(r.Confused, Confusion{Gold: k[0], Predicted: k[1], Count: n})
	}
	sort.Slice(r.Confused, func(i, j int) bool {
		a, b := r.Confused[i], r.Confused[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Gold+"\x00"+a.Predicted < b.Gold+"\x00"+b.Predicted
	})
	return r
}

// WriteThresholds sets score_threshold of the routes in a router.json file
// and writes it back atomically, keeping every other field.
func WriteThresholds(path string, th map[string]float32) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	rf, err := config.ParseRouter(path, data)
	if err != nil {
		return err
	}
	for i := range rf.Routes {
		if t, ok := th[rf.Routes[i].Name]; ok {
			v := float64(int(float64(t)*1000+0.5)) / 1000
			rf.Routes[i].ScoreThreshold = &v
		}
	}
	out, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	if err := renameio.WriteFile(path, append(out, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
