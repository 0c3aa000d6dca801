package eval

import (
	"encoding/xml"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/autorouter/autorouter/router"
)

// synthetic builds a router-like labelled set: in-scope rows score their
// own route in [inLo, inHi] (and a random other route lower), out-of-scope
// rows score a random route in [oosLo, oosHi]. Every threshold is 0.5.
func synthetic(routes, perRoute, oos int, inLo, inHi, oosLo, oosHi float64, seed uint64) ([]Example, []string) {
	r := rand.New(rand.NewPCG(seed, seed+1))
	names := make([]string, routes)
	for i := range names {
		names[i] = fmt.Sprintf("r%03d", i)
	}
	score := func(gold int, lo, hi float64) []router.RouteScore {
		top := float32(lo + r.Float64()*(hi-lo))
		other := (gold + 1 + r.IntN(routes-1)) % routes
		return []router.RouteScore{
			{Route: names[gold], Score: top, Threshold: 0.5},
			{Route: names[other], Score: top * float32(0.5+0.4*r.Float64()), Threshold: 0.5},
		}
	}
	var ex []Example
	for g := 0; g < routes; g++ {
		for i := 0; i < perRoute; i++ {
			ex = append(ex, Example{Scores: score(g, inLo, inHi), Gold: names[g]})
		}
	}
	for i := 0; i < oos; i++ {
		ex = append(ex, Example{Scores: score(r.IntN(routes), oosLo, oosHi)})
	}
	return ex, names
}

// bestOnCurve is the brute-force answer for one global threshold: the
// most in-scope accuracy with at least minRecall (or the most recall with
// at least minAcc), over the same grid Fit searches.
func bestOnCurve(ex []Example, routes []string, minRecall, minAcc float64) CurvePoint {
	best := CurvePoint{InScopeAccuracy: -1, OutOfScopeRecall: -1}
	for _, p := range Curve(ex, routes) {
		switch {
		case minRecall > 0 && p.OutOfScopeRecall >= minRecall && p.InScopeAccuracy > best.InScopeAccuracy:
			best = p
		case minAcc > 0 && p.InScopeAccuracy >= minAcc && p.OutOfScopeRecall > best.OutOfScopeRecall:
			best = p
		}
	}
	return best
}

func TestFitTargets(t *testing.T) {
	// Overlapping in-scope and out-of-scope scores: every threshold trades.
	ex, routes := synthetic(20, 20, 200, 0.4, 0.9, 0.2, 0.6, 1)
	for _, tc := range []struct {
		name string
		opts FitOptions
		// wantRecall / wantAcc: the minimum the fitted rows must show.
		wantRecall, wantAcc float64
	}{
		{"recall 0.75, measured", FitOptions{GlobalOnly: true, MinOutOfScopeRecall: 0.75, Confidence: 0.5}, 0.75, 0},
		{"recall 0.75, 95% bound", FitOptions{GlobalOnly: true, MinOutOfScopeRecall: 0.75}, 0.79, 0},
		{"recall 0.5, measured", FitOptions{GlobalOnly: true, MinOutOfScopeRecall: 0.5, Confidence: 0.5}, 0.5, 0},
		{"accuracy 0.8, measured", FitOptions{GlobalOnly: true, MinAccuracy: 0.8, Confidence: 0.5}, 0, 0.8},
		{"accuracy 0.8, 95% bound", FitOptions{GlobalOnly: true, MinAccuracy: 0.8}, 0, 0.815},
		{"recall 0.75 per route", FitOptions{MinOutOfScopeRecall: 0.75, Confidence: 0.5}, 0.72, 0},
		{"accuracy 0.8 per route", FitOptions{MinAccuracy: 0.8, Confidence: 0.5}, 0, 0.78},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := FitCV(ex, routes, tc.opts)
			r := f.Report
			if !f.Summary.TargetMet {
				t.Fatalf("target not met: %+v", f.Summary)
			}
			if r.OutOfScopeRecall < tc.wantRecall || r.InScopeAccuracy < tc.wantAcc {
				t.Fatalf("fitted %.3f in-scope / %.3f recall; want recall ≥ %.3f, accuracy ≥ %.3f", r.InScopeAccuracy, r.OutOfScopeRecall, tc.wantRecall, tc.wantAcc)
			}
			if !tc.opts.GlobalOnly || tc.opts.Confidence != 0.5 {
				return
			}
			// One measured threshold must be the brute-force optimum.
			want := bestOnCurve(ex, routes, tc.opts.MinOutOfScopeRecall, tc.opts.MinAccuracy)
			if tc.opts.MinOutOfScopeRecall > 0 && math.Abs(r.InScopeAccuracy-want.InScopeAccuracy) > 1e-9 {
				t.Errorf("accuracy %.4f, the curve's best at that recall is %.4f (threshold %.3f)", r.InScopeAccuracy, want.InScopeAccuracy, want.Threshold)
			}
			if tc.opts.MinAccuracy > 0 && math.Abs(r.OutOfScopeRecall-want.OutOfScopeRecall) > 1e-9 {
				t.Errorf("recall %.4f, the curve's best at that accuracy is %.4f (threshold %.3f)", r.OutOfScopeRecall, want.OutOfScopeRecall, want.Threshold)
			}
		})
	}
}

func TestFitUnreachableTarget(t *testing.T) {
	ex, routes := synthetic(5, 10, 50, 0.4, 0.9, 0.2, 0.6, 2)
	f := FitCV(ex, routes, FitOptions{GlobalOnly: true, MinAccuracy: 1, Confidence: 0.99})
	if f.Summary.TargetMet {
		t.Fatalf("a perfect accuracy bound at 99%% over 50 rows cannot be met: %+v", f.Summary)
	}
	// Closest: the most accuracy there is, at no threshold at all.
	if f.Report.InScopeAccuracy != 1 {
		t.Fatalf("closest fit gives %.3f in-scope accuracy, want every in-scope row routed", f.Report.InScopeAccuracy)
	}
}

func TestFitDefaultKeepsRecall(t *testing.T) {
	for _, tc := range []struct {
		name           string
		inLo, oosHi    float64
		global         bool
		wantAccGainMin float64
	}{
		{"global, overlapping", 0.3, 0.6, true, 0},
		{"per route, overlapping", 0.3, 0.6, false, 0},
		{"global, separable", 0.55, 0.5, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex, routes := synthetic(20, 20, 200, tc.inLo, 0.9, 0.2, tc.oosHi, 3)
			before := Evaluate(ex, nil)
			f := FitCV(ex, routes, FitOptions{GlobalOnly: tc.global})
			if f.Report.OutOfScopeRecall < before.OutOfScopeRecall {
				t.Errorf("recall fell from %.3f to %.3f", before.OutOfScopeRecall, f.Report.OutOfScopeRecall)
			}
			if f.Report.InScopeAccuracy < before.InScopeAccuracy-0.01 {
				t.Errorf("accuracy fell from %.3f to %.3f", before.InScopeAccuracy, f.Report.InScopeAccuracy)
			}
			if !strings.Contains(f.Summary.Objective, "current thresholds") {
				t.Errorf("objective %q does not say it keeps the current recall", f.Summary.Objective)
			}
		})
	}
}

// TestShrinkage: a route with few labelled rows stays near the global
// threshold, one with many can move; with no prior both move.
func TestShrinkage(t *testing.T) {
	rs := func(route string, s float32) []router.RouteScore {
		return []router.RouteScore{{Route: route, Score: s, Threshold: 0.5}}
	}
	var ex []Example
	// Route c draws every out-of-scope prompt (scores 0.30-0.60) and its
	// own rows score 0.62-0.90: the global threshold lands near 0.6.
	for i := 0; i < 300; i++ {
		ex = append(ex, Example{Scores: rs("c", 0.62+0.28*float32(i)/300), Gold: "c"})
	}
	for i := 0; i < 100; i++ {
		ex = append(ex, Example{Scores: rs("c", 0.30+0.30*float32(i)/100)})
	}
	// Routes a (300 rows) and b (3 rows) score 0.40-0.58 and draw no
	// out-of-scope prompt, so each would drop its threshold to 0.40.
	for i := 0; i < 300; i++ {
		ex = append(ex, Example{Scores: rs("a", 0.40+0.18*float32(i)/300), Gold: "a"})
	}
	for _, s := range []float32{0.40, 0.47, 0.55} {
		ex = append(ex, Example{Scores: rs("b", s), Gold: "b"})
	}
	routes := []string{"a", "b", "c"}
	f := FitCV(ex, routes, FitOptions{MinOutOfScopeRecall: 0.9, Confidence: 0.5})
	if g := f.Summary.GlobalThreshold; g < 0.55 || g > 0.62 {
		t.Fatalf("global threshold %.3f, want about 0.6", g)
	}
	if f.Report.InScopeAccuracy < 0.99 || f.Report.OutOfScopeRecall < 0.85 {
		t.Errorf("per-route fit gives %.3f / %.3f; want route a's rows back at no cost in recall", f.Report.InScopeAccuracy, f.Report.OutOfScopeRecall)
	}
	ds := compile(ex, routes)
	const g = 0.6
	for _, tc := range []struct {
		name  string
		prior float64
		// want: the thresholds before the common shift, ±0.015.
		a, b, c float32
	}{
		// a: 0.6 + 300/350·(0.40−0.6); b: 0.6 + 3/53·(0.40−0.6).
		{"default prior (50 rows)", 0, 0.429, 0.589, 0.6},
		{"no prior", 1e-6, 0.40, 0.40, 0.6},
		{"strong prior (3000 rows)", 3000, 0.581, 0.6, 0.6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ft := &fitter{opts: FitOptions{PriorRows: tc.prior}.withDefaults()}
			th := ft.perRoute(ds, g, 1)
			for i, want := range []float32{tc.a, tc.b, tc.c} {
				if d := th[i] - want; d > 0.015 || d < -0.015 {
					t.Errorf("route %s at %.3f, want %.3f", ds.names[i], th[i], want)
				}
			}
		})
	}
}

// TestCrossValidationIsHonest: on rows with no signal per route, per-route
// thresholds fitted and placed on the same rows look better there than on
// fresh rows; the cross-validated estimate must match fresh rows, and the
// out-of-fold placement must keep the thresholds from the optimism.
func TestCrossValidationIsHonest(t *testing.T) {
	sum := func(r Report) float64 { return r.InScopeAccuracy + r.OutOfScopeRecall }
	ex, routes := synthetic(60, 10, 300, 0.3, 0.8, 0.3, 0.8, 4)
	fresh, _ := synthetic(60, 10, 300, 0.3, 0.8, 0.3, 0.8, 40)
	for _, tc := range []struct {
		name     string
		prior    float64
		inSample bool
		// optimism is the least the in-sample figure must exceed the
		// fresh one by; -1 means it must not (within 0.06).
		optimism float64
	}{
		{"shrunk", 0, false, -1},
		{"unshrunk, placed out of fold", 1e-6, false, -1},
		{"unshrunk, placed in sample", 1e-6, true, 0.15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := FitCV(ex, routes, FitOptions{OutOfScopeWeight: 1, PriorRows: tc.prior, inSampleShift: tc.inSample})
			cv := f.CrossValidated
			if cv == nil || cv.InScope != f.Report.InScope || cv.OutOfScope != f.Report.OutOfScope {
				t.Fatalf("cross-validated report %+v for %d+%d rows", cv, f.Report.InScope, f.Report.OutOfScope)
			}
			got := sum(Evaluate(fresh, f.Thresholds))
			if d := sum(*cv) - got; tc.optimism < 0 && math.Abs(d) > 0.08 {
				t.Errorf("cross-validated accuracy + recall %.3f, fresh rows %.3f", sum(*cv), got)
			}
			if opt := sum(f.Report) - got; tc.optimism < 0 && opt > 0.06 || tc.optimism >= 0 && opt < tc.optimism {
				t.Errorf("in-sample accuracy + recall %.3f, fresh rows %.3f", sum(f.Report), got)
			}
		})
	}
}

func TestFitOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts FitOptions
		want string // "" valid
	}{
		{"zero", FitOptions{}, ""},
		{"everything", FitOptions{GlobalOnly: true, MinOutOfScopeRecall: 0.8, Confidence: 0.9, PriorRows: 10, Folds: 10}, ""},
		{"negative weight", FitOptions{OutOfScopeWeight: -1}, "out-of-scope weight"},
		{"NaN weight", FitOptions{OutOfScopeWeight: math.NaN()}, "out-of-scope weight"},
		{"recall above 1", FitOptions{MinOutOfScopeRecall: 75}, "share in (0,1]"},
		{"accuracy below 0", FitOptions{MinAccuracy: -0.1}, "share in (0,1]"},
		{"both minimums", FitOptions{MinOutOfScopeRecall: 0.7, MinAccuracy: 0.9}, "cannot both"},
		{"weight and minimum", FitOptions{OutOfScopeWeight: 1, MinAccuracy: 0.9}, "cannot both"},
		{"confidence 1", FitOptions{Confidence: 1}, "confidence"},
		{"confidence 0.2", FitOptions{Confidence: 0.2}, "below 0.5"},
		{"negative prior", FitOptions{PriorRows: -3}, "prior rows"},
		{"negative folds", FitOptions{Folds: -1}, "folds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestWilsonLower(t *testing.T) {
	for _, tc := range []struct {
		k, n  int
		z     float64
		above bool // whether the bound reaches 0.75
	}{
		{83, 100, 1.645, true},
		{82, 100, 1.645, false},
		{75, 100, 0, true},
		{74, 100, 0, false},
		{750, 1000, 1.645, false},
		{780, 1000, 1.645, true},
	} {
		got := wilsonLower(tc.k, tc.n, tc.z)
		if (got >= 0.75) != tc.above || got > float64(tc.k)/float64(tc.n)+1e-12 {
			t.Errorf("wilsonLower(%d, %d, %g) = %.4f", tc.k, tc.n, tc.z, got)
		}
	}
	if wilsonLower(0, 0, 1.645) != 0 {
		t.Error("no rows: want 0")
	}
}

func TestCurve(t *testing.T) {
	ex, routes := synthetic(10, 10, 40, 0.4, 0.9, 0.2, 0.6, 5)
	c := Curve(ex, routes)
	if len(c) != CurveSteps+1 || c[0].Threshold != 0 || c[len(c)-1].Threshold != 1 {
		t.Fatalf("curve of %d points from %v to %v", len(c), c[0].Threshold, c[len(c)-1].Threshold)
	}
	if c[0].OutOfScopeRecall != 0 || c[len(c)-1].InScopeAccuracy != 0 || c[len(c)-1].OutOfScopeRecall != 1 {
		t.Fatalf("ends %+v %+v: want no fallback at 0 and everything falling back at 1", c[0], c[len(c)-1])
	}
	for i := 1; i < len(c); i++ {
		if c[i].InScopeAccuracy > c[i-1].InScopeAccuracy || c[i].OutOfScopeRecall < c[i-1].OutOfScopeRecall {
			t.Fatalf("point %d %+v after %+v: a higher threshold cannot gain accuracy or lose recall", i, c[i], c[i-1])
		}
	}
	// Each point is what Evaluate says of that threshold.
	p := c[100]
	r := Evaluate(ex, map[string]float32{"r000": p.Threshold, "r001": p.Threshold, "r002": p.Threshold, "r003": p.Threshold, "r004": p.Threshold,
		"r005": p.Threshold, "r006": p.Threshold, "r007": p.Threshold, "r008": p.Threshold, "r009": p.Threshold})
	if r.InScopeAccuracy != p.InScopeAccuracy || r.OutOfScopeRecall != p.OutOfScopeRecall {
		t.Fatalf("curve at %v says %+v, Evaluate says %.4f / %.4f", p.Threshold, p, r.InScopeAccuracy, r.OutOfScopeRecall)
	}
}

func TestPlotSVG(t *testing.T) {
	ex, routes := synthetic(10, 10, 40, 0.4, 0.9, 0.2, 0.6, 6)
	svg := PlotSVG(`a <title> & "quotes"`, []PlotSeries{
		{Name: "similarity", Curve: Curve(ex, routes), Marks: []PlotMark{{Label: "current", InScopeAccuracy: 0.8, OutOfScopeRecall: 0.5}, {Label: "fitted", InScopeAccuracy: 0.85, OutOfScopeRecall: 0.6}}},
		{Name: "classifier", Curve: Curve(ex, routes)[:50], Marks: []PlotMark{{Label: "a", InScopeAccuracy: 0.9}, {Label: "b"}, {Label: "c"}, {Label: "d"}}},
	})
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := dec.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("not well-formed XML: %v\n%s", err, svg[:min(len(svg), 400)])
			}
			break
		}
	}
	for _, want := range []string{"<svg", "a &lt;title&gt; &amp; &quot;quotes&quot;", "similarity", "classifier", "current (80.0% / 50.0%)", "fitted (85.0% / 60.0%)", "<polyline", "<polygon", "<rect x="} {
		if !strings.Contains(svg, want) {
			t.Errorf("plot lacks %q", want)
		}
	}
}
