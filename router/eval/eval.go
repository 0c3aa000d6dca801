// Package eval measures routing quality on labelled prompts (in-scope
// accuracy, out-of-scope recall, per-route precision and recall) and fits
// score thresholds to them. It is offline tooling for 'autorouter eval' and
// the admin page; the serving path never imports it.
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
	r := Report{PerRoute: map[string]RouteQuality{}}
	correct, fellBack := 0, 0
	predicted, support, hits := map[string]int{}, map[string]int{}, map[string]int{}
	confused := map[[2]string]int{}
	for _, ex := range examples {
		p := predict(ex, thresholds)
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

// objective is what Fit maximises: in-scope accuracy plus w
// times out-of-scope recall, so neither can be bought entirely with the
// other. Data without out-of-scope rows reduces to accuracy.
func objective(r Report, w float64) float64 {
	if r.OutOfScope == 0 {
		return r.InScopeAccuracy
	}
	return r.InScopeAccuracy + w*r.OutOfScopeRecall
}

// FitOptions tunes Fit.
type FitOptions struct {
	// GlobalOnly keeps one threshold for every route. Per-route thresholds
	// fit the data better but overfit when routes have few labelled rows.
	GlobalOnly bool
	// OutOfScopeWeight is what a point of out-of-scope recall is worth in
	// points of in-scope accuracy. Zero, the default, weighs them by their
	// rows, so the fit maximises the share of all labelled prompts routed
	// right: labelled data that mirrors traffic gets the best thresholds
	// for that traffic. 1 counts both rates the same, which favours
	// out-of-scope recall when out-of-scope rows are few; it finds far
	// stricter thresholds and costs in-scope accuracy.
	OutOfScopeWeight float64
}

// Fit searches thresholds on labelled examples: first the best
// single threshold for every route, then (unless GlobalOnly) coordinate
// ascent, one route at a time, over a grid of 0.01. It returns the
// thresholds and the report they give on the same examples.
func Fit(examples []Example, routes []string, opts FitOptions) (map[string]float32, Report) {
	th := make(map[string]float32, len(routes))
	set := func(v float32) {
		for _, r := range routes {
			th[r] = v
		}
	}
	w := opts.OutOfScopeWeight
	if w <= 0 {
		var in, out int
		for _, ex := range examples {
			if ex.Gold == "" {
				out++
			} else {
				in++
			}
		}
		w = 1
		if in > 0 {
			w = float64(out) / float64(in)
		}
	}
	best, bestV := -1.0, float32(0)
	for i := 0; i <= 100; i++ {
		set(float32(i) / 100)
		if o := objective(Evaluate(examples, th), w); o > best {
			best, bestV = o, float32(i)/100
		}
	}
	set(bestV)
	if opts.GlobalOnly {
		return th, Evaluate(examples, th)
	}
	// Only examples whose candidates include a route can change with it.
	touches := map[string][]Example{}
	for _, ex := range examples {
		for _, s := range ex.Scores {
			touches[s.Route] = append(touches[s.Route], ex)
		}
	}
	all := Evaluate(examples, th)
	wIn, wOut := 0.0, 0.0
	if all.InScope > 0 {
		wIn = 1 / float64(all.InScope)
	}
	if all.OutOfScope > 0 {
		wOut = w / float64(all.OutOfScope)
	}
	for pass := 0; pass < 2; pass++ {
		improved := false
		for _, r := range routes {
			sub := touches[r]
			if len(sub) == 0 {
				continue
			}
			cur := th[r]
			base := localScore(sub, th, wIn, wOut)
			bestT, bestS := cur, base
			for i := 0; i <= 100; i++ {
				th[r] = float32(i) / 100
				if s := localScore(sub, th, wIn, wOut); s > bestS+1e-12 {
					bestT, bestS = th[r], s
				}
			}
			th[r] = bestT
			improved = improved || bestT != cur
		}
		if !improved {
			break
		}
	}
	return th, Evaluate(examples, th)
}

// localScore is the objective's share from examples: each in-scope hit
// counts wIn and each out-of-scope fallback wOut, so that summing over a
// subset ranks threshold changes as the whole objective would.
func localScore(examples []Example, th map[string]float32, wIn, wOut float64) float64 {
	var s float64
	for _, ex := range examples {
		if predict(ex, th) != ex.Gold {
			continue
		}
		if ex.Gold == "" {
			s += wOut
		} else {
			s += wIn
		}
	}
	return s
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
