package eval

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// FitOptions tunes Fit. The zero value is the default fit: it keeps the
// out-of-scope recall the router's current thresholds have on the
// labelled rows and finds the thresholds with the most in-scope accuracy
// at that recall, so it never trades rejection of unknown prompts for
// accuracy behind the user's back.
type FitOptions struct {
	// GlobalOnly keeps one threshold for every route. Per-route thresholds
	// are shrunk towards it (see PriorRows), so they are safe with few
	// labelled rows too; GlobalOnly is the simplest model of all.
	GlobalOnly bool `json:"global,omitempty"`
	// OutOfScopeWeight, when positive, maximises in-scope accuracy plus
	// this many times out-of-scope recall instead (1 counts both rates the
	// same). It cannot be combined with a minimum.
	OutOfScopeWeight float64 `json:"oos_weight,omitempty"`
	// MinOutOfScopeRecall, when positive, maximises in-scope accuracy
	// subject to out-of-scope recall of at least this share, in (0,1],
	// checked against the lower confidence bound (see Confidence).
	MinOutOfScopeRecall float64 `json:"min_oos_recall,omitempty"`
	// MinAccuracy, when positive, maximises out-of-scope recall subject
	// to in-scope accuracy of at least this share, in (0,1], also checked
	// against the lower confidence bound.
	MinAccuracy float64 `json:"min_accuracy,omitempty"`
	// Confidence is how sure the fit must be that a minimum holds on new
	// prompts like the labelled ones: the one-sided Wilson lower bound of
	// the rate at this confidence must reach the minimum. Default 0.95.
	// With 100 out-of-scope rows a 75% recall minimum then needs 83 of
	// them caught; 0.5 checks the measured rate itself.
	Confidence float64 `json:"confidence,omitempty"`
	// PriorRows is how many labelled in-scope rows of its own a route needs
	// for its threshold to move halfway from the global threshold to the
	// one that fits its rows best: a route with n rows moves n/(n+PriorRows)
	// of the way. Default 50, so a route with 3 rows moves 6% and one with
	// 300 moves 86%.
	PriorRows float64 `json:"prior_rows,omitempty"`
	// Folds is k of the k-fold cross-validation that estimates how the
	// fitted thresholds do on prompts they were not fitted on (and that
	// places per-route thresholds; see Fit). Default 5; 1 turns it off.
	Folds int `json:"folds,omitempty"`

	// inSampleShift places per-route thresholds by their rates on the
	// rows they were fitted on instead of out-of-fold rates: what tests
	// compare the out-of-fold placement with.
	inSampleShift bool
}

// Defaults of FitOptions.
const (
	DefaultConfidence = 0.95
	DefaultPriorRows  = 50
	DefaultFolds      = 5
)

// Validate checks the options and says what valid values look like.
func (o FitOptions) Validate() error {
	bad := func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }
	switch {
	case bad(o.OutOfScopeWeight) || o.OutOfScopeWeight < 0:
		return &OptionError{"oos_weight", fmt.Sprintf("out-of-scope weight %g: want 0 (the default objective) or a positive number", o.OutOfScopeWeight)}
	case bad(o.MinOutOfScopeRecall) || o.MinOutOfScopeRecall < 0 || o.MinOutOfScopeRecall > 1:
		return &OptionError{"min_oos_recall", fmt.Sprintf("minimum out-of-scope recall %g: want a share in (0,1], e.g. 0.75", o.MinOutOfScopeRecall)}
	case bad(o.MinAccuracy) || o.MinAccuracy < 0 || o.MinAccuracy > 1:
		return &OptionError{"min_accuracy", fmt.Sprintf("minimum in-scope accuracy %g: want a share in (0,1], e.g. 0.9", o.MinAccuracy)}
	case bad(o.Confidence) || o.Confidence < 0 || o.Confidence >= 1:
		return &OptionError{"confidence", fmt.Sprintf("confidence %g: want a share in [0.5,1), e.g. 0.95, or 0 for the default", o.Confidence)}
	case o.Confidence > 0 && o.Confidence < 0.5:
		return &OptionError{"confidence", fmt.Sprintf("confidence %g: below 0.5 the fit would accept rates under the minimum; want [0.5,1)", o.Confidence)}
	case bad(o.PriorRows) || o.PriorRows < 0:
		return &OptionError{"prior_rows", fmt.Sprintf("prior rows %g: want a positive number of rows, or 0 for the default %d", o.PriorRows, DefaultPriorRows)}
	case o.Folds < 0:
		return &OptionError{"folds", fmt.Sprintf("folds %d: want 2 or more, 1 for no cross-validation, or 0 for the default %d", o.Folds, DefaultFolds)}
	case o.MinOutOfScopeRecall > 0 && o.MinAccuracy > 0:
		return &OptionError{"min_accuracy", "a minimum out-of-scope recall and a minimum in-scope accuracy cannot both be asked for: fix one and the fit maximises the other"}
	case o.OutOfScopeWeight > 0 && (o.MinOutOfScopeRecall > 0 || o.MinAccuracy > 0):
		return &OptionError{"oos_weight", "an out-of-scope weight and a minimum cannot both be asked for: the weight is an objective of its own"}
	}
	return nil
}

// OptionError is a FitOptions value that is out of range or does not go
// with another; Field is its JSON name.
type OptionError struct {
	Field string
	Msg   string
}

func (e *OptionError) Error() string { return e.Msg }

func (o FitOptions) withDefaults() FitOptions {
	if o.Confidence == 0 {
		o.Confidence = DefaultConfidence
	}
	if o.PriorRows == 0 {
		o.PriorRows = DefaultPriorRows
	}
	if o.Folds == 0 {
		o.Folds = DefaultFolds
	}
	return o
}

// FitSummary says what a fit optimised and how it went.
type FitSummary struct {
	// Objective describes what was maximised, under which constraint.
	Objective string `json:"objective"`
	// TargetMet is false when no thresholds reached the minimum asked for
	// (or, by default, the current out-of-scope recall); the fit then
	// returns the thresholds that came closest.
	TargetMet bool `json:"target_met"`
	// GlobalThreshold is the best single threshold, which per-route
	// thresholds are shrunk towards.
	GlobalThreshold float32 `json:"global_threshold"`
	// TradeOff is the out-of-scope weight per-route thresholds were fitted
	// at: the slope of the accuracy/recall curve at the operating point.
	TradeOff float64 `json:"trade_off"`
	// PerRoute reports that thresholds differ per route.
	PerRoute  bool    `json:"per_route"`
	PriorRows float64 `json:"prior_rows,omitempty"`
	// Folds is the k of the cross-validated estimate; 0 when there is none.
	Folds int      `json:"folds"`
	Notes []string `json:"notes,omitempty"`
}

// Fitted is the outcome of FitCV.
type Fitted struct {
	Thresholds map[string]float32
	// Report is the fitted thresholds' quality on the rows they were
	// fitted on: optimistic, the more so the more thresholds there are.
	Report Report
	// CrossValidated is the k-fold estimate on rows the fit did not see:
	// each fold routed under thresholds fitted, the same way, on the
	// other folds. Nil when folds is 1 or there are too few rows.
	CrossValidated *Report
	Summary        FitSummary
}

// Fit fits thresholds on labelled examples and returns them with their
// report on the same examples. See FitCV.
func Fit(examples []Example, routes []string, opts FitOptions) (map[string]float32, Report) {
	f := FitCV(examples, routes, opts)
	return f.Thresholds, f.Report
}

// FitCV fits thresholds for routes on labelled examples. Options that do
// not validate are treated as the default fit.
//
// The fit first sweeps one global threshold (a grid of 0.005) and picks
// the best point for the objective. Unless opts.GlobalOnly, each route
// then gets its own threshold by coordinate ascent (at the curve's
// trade-off at that point, for the constrained objectives), shrunk
// towards the global one by the route's support (opts.PriorRows), and
// the shrunk thresholds are moved together by the one shift that meets
// the objective on out-of-fold predictions: per-route thresholds fitted
// on all rows look better on those rows than they will on new ones, so
// the shift is chosen where the optimism is gone. Finally the whole
// procedure is cross-validated to give an honest estimate.
func FitCV(examples []Example, routes []string, opts FitOptions) Fitted {
	if opts.Validate() != nil {
		opts = FitOptions{GlobalOnly: opts.GlobalOnly}
	}
	opts = opts.withDefaults()
	ds := compile(examples, routes)
	ft := &fitter{opts: opts}
	res := ft.fit(ds, !opts.inSampleShift)
	out := Fitted{Thresholds: make(map[string]float32, len(routes))}
	for i, n := range ds.names {
		if ds.fitted[i] {
			out.Thresholds[n] = res.th[i]
		}
	}
	out.Report = Evaluate(examples, out.Thresholds)
	g := ft.goal(ds)
	out.Summary = FitSummary{
		Objective:       g.describe(opts),
		TargetMet:       res.met,
		GlobalThreshold: res.global,
		TradeOff:        res.w,
		PerRoute:        !opts.GlobalOnly,
	}
	if !opts.GlobalOnly {
		out.Summary.PriorRows = opts.PriorRows
	}
	if k := ds.folds(opts.Folds); k > 1 {
		preds := ft.crossValidate(ds, k)
		names := make([]string, len(preds))
		for i, p := range preds {
			if p >= 0 {
				names[i] = ds.names[p]
			}
		}
		cv := evaluatePredicted(examples, names)
		out.CrossValidated = &cv
		out.Summary.Folds = k
	}
	if ds.out == 0 {
		out.Summary.Notes = append(out.Summary.Notes, "the labelled rows have no out-of-scope prompts (route null), so the fit cannot see what lower thresholds let in; add some")
	}
	return out
}

// gridSteps divides [0,1] into the thresholds a sweep tries.
const gridSteps = 200

// maxShift bounds how far the shift moves shrunk per-route thresholds.
const maxShift = 0.5

// cscore is one candidate route of a compiled example.
type cscore struct {
	route int32
	score float32
	own   float32 // the route's threshold when the example was scored
}

// cexample is an Example with route names replaced by indices; gold is -1
// for out of scope.
type cexample struct {
	scores []cscore
	gold   int32
}

// dataset is examples compiled for fast refitting; subsets share names.
type dataset struct {
	names  []string
	fitted []bool    // whether Fit may move the route's threshold
	own    []float32 // the route's current threshold, first seen
	ex     []cexample
	// rows are the indices of ex in the original examples.
	rows    []int
	in, out int
	support []int // in-scope rows per route
}

func compile(examples []Example, routes []string) *dataset {
	ds := &dataset{}
	idx := map[string]int32{}
	add := func(name string, fitted bool, own float32) int32 {
		if i, ok := idx[name]; ok {
			return i
		}
		i := int32(len(ds.names))
		idx[name] = i
		ds.names = append(ds.names, name)
		ds.fitted = append(ds.fitted, fitted)
		ds.own = append(ds.own, own)
		return i
	}
	for _, r := range routes {
		add(r, true, float32(math.NaN()))
	}
	ds.ex = make([]cexample, len(examples))
	ds.rows = make([]int, len(examples))
	for i, e := range examples {
		ce := cexample{gold: -1, scores: make([]cscore, len(e.Scores))}
		for j, s := range e.Scores {
			r := add(s.Route, false, s.Threshold)
			if math.IsNaN(float64(ds.own[r])) {
				ds.own[r] = s.Threshold
			}
			ce.scores[j] = cscore{route: r, score: s.Score, own: s.Threshold}
		}
		if e.Gold != "" {
			ce.gold = add(e.Gold, false, float32(math.NaN()))
		}
		ds.ex[i], ds.rows[i] = ce, i
	}
	for i := range ds.own {
		if math.IsNaN(float64(ds.own[i])) {
			ds.own[i] = 0.5 // never scored: its threshold decides nothing
		}
	}
	ds.count()
	return ds
}

func (ds *dataset) count() {
	ds.in, ds.out = 0, 0
	ds.support = make([]int, len(ds.names))
	for _, e := range ds.ex {
		if e.gold < 0 {
			ds.out++
		} else {
			ds.in++
			ds.support[e.gold]++
		}
	}
}

// subset returns the rows of ds whose position keep accepts.
func (ds *dataset) subset(keep func(pos int) bool) *dataset {
	sub := &dataset{names: ds.names, fitted: ds.fitted, own: ds.own}
	for pos, e := range ds.ex {
		if keep(pos) {
			sub.ex = append(sub.ex, e)
			sub.rows = append(sub.rows, ds.rows[pos])
		}
	}
	sub.count()
	return sub
}

// foldOf assigns positions to k folds, stratified: the rows of each route
// (and the out-of-scope rows) are dealt round-robin, each class starting
// at another fold so that fold sizes stay even.
func (ds *dataset) foldOf(k int) []int {
	next := map[int32]int{}
	f := make([]int, len(ds.ex))
	for pos, e := range ds.ex {
		n, ok := next[e.gold]
		if !ok {
			n = int(e.gold+1) % k
		}
		f[pos] = n % k
		next[e.gold] = n + 1
	}
	return f
}

// folds is how many folds cross-validation can use: k, but only when each
// fold gets at least one row of each kind present and some rows.
func (ds *dataset) folds(k int) int {
	if k <= 1 || len(ds.ex) < 2*k {
		return 0
	}
	return k
}

// predict is the first-passing-route rule over compiled scores.
func (e *cexample) predict(th []float32) int32 {
	for _, s := range e.scores {
		if s.score >= th[s.route] {
			return s.route
		}
	}
	return -1
}

// point is one threshold setting's counts: in-scope rows routed right and
// out-of-scope rows that fell back.
type point struct{ hits, fell int }

func (ds *dataset) rates(th []float32) point {
	var p point
	for i := range ds.ex {
		e := &ds.ex[i]
		p.count(e.predict(th), e.gold)
	}
	return p
}

// count adds one row routed to got (-1: the default model) whose label is
// gold.
func (p *point) count(got, gold int32) {
	if got != gold {
		return
	}
	if gold < 0 {
		p.fell++
	} else {
		p.hits++
	}
}

func (ds *dataset) current() point {
	var p point
	for _, e := range ds.ex {
		got := int32(-1)
		for _, s := range e.scores {
			if s.score >= s.own {
				got = s.route
				break
			}
		}
		p.count(got, e.gold)
	}
	return p
}

// fill sets every fitted route's threshold to t and the others to their own.
func (ds *dataset) fill(th []float32, t float32) []float32 {
	for i := range ds.names {
		if ds.fitted[i] {
			th[i] = t
		} else {
			th[i] = ds.own[i]
		}
	}
	return th
}

// objective kinds.
const (
	keepRecall  = iota // default: at least the current recall, most accuracy
	weighted           // accuracy + w × recall
	minRecall          // at least a recall, most accuracy
	minAccuracy        // at least an accuracy, most recall
)

// goal is an objective made concrete for one dataset.
type goal struct {
	kind    int
	w       float64 // weighted
	target  float64 // minimum of the constrained kinds
	z       float64 // normal quantile of the confidence; 0 checks the rate itself
	in, out int
}

func (ft *fitter) goal(ds *dataset) goal {
	o := ft.opts
	g := goal{in: ds.in, out: ds.out, z: math.Sqrt2 * math.Erfinv(2*o.Confidence-1)}
	switch {
	case o.OutOfScopeWeight > 0:
		g.kind, g.w = weighted, o.OutOfScopeWeight
	case o.MinOutOfScopeRecall > 0:
		g.kind, g.target = minRecall, o.MinOutOfScopeRecall
	case o.MinAccuracy > 0:
		g.kind, g.target = minAccuracy, o.MinAccuracy
	default:
		g.kind, g.z = keepRecall, 0
		if ds.out > 0 {
			g.target = float64(ds.current().fell) / float64(ds.out)
		}
	}
	return g
}

func (g goal) describe(o FitOptions) string {
	switch g.kind {
	case weighted:
		return fmt.Sprintf("maximise in-scope accuracy + %g × out-of-scope recall", g.w)
	case minRecall:
		return fmt.Sprintf("maximise in-scope accuracy with out-of-scope recall ≥ %.1f%% (at %g%% confidence over %d out-of-scope rows)", 100*g.target, 100*o.Confidence, g.out)
	case minAccuracy:
		return fmt.Sprintf("maximise out-of-scope recall with in-scope accuracy ≥ %.1f%% (at %g%% confidence over %d in-scope rows)", 100*g.target, 100*o.Confidence, g.in)
	}
	return fmt.Sprintf("maximise in-scope accuracy keeping out-of-scope recall ≥ %.1f%%, what the current thresholds have on these rows", 100*g.target)
}

func (g goal) rates(p point) (acc, rec float64) {
	if g.in > 0 {
		acc = float64(p.hits) / float64(g.in)
	}
	if g.out > 0 {
		rec = float64(p.fell) / float64(g.out)
	}
	return acc, rec
}

// key ranks points: feasible ones first, then by the objective, then by
// the other rate.
func (g goal) key(p point) (feasible bool, primary, secondary float64) {
	acc, rec := g.rates(p)
	switch g.kind {
	case weighted:
		return true, acc + g.w*rec, rec
	case minAccuracy:
		if wilsonLower(p.hits, g.in, g.z) >= g.target-1e-12 {
			return true, rec, acc
		}
		return false, acc, rec
	case minRecall:
		if g.out > 0 && wilsonLower(p.fell, g.out, g.z) >= g.target-1e-12 {
			return true, acc, rec
		}
		return false, rec, acc
	}
	if g.out == 0 || rec >= g.target-1e-12 {
		return true, acc, rec
	}
	return false, rec, acc
}

func (g goal) less(a, b point) bool {
	fa, pa, sa := g.key(a)
	fb, pb, sb := g.key(b)
	if fa != fb {
		return fb
	}
	if math.Abs(pa-pb) > 1e-12 {
		return pa < pb
	}
	return sa < sb-1e-12
}

// best picks the best of points (ordered by threshold): among equals, the
// middle of the first run of them, the setting furthest from either edge.
func (g goal) best(points []point) (int, bool) {
	bi := 0
	for i := range points {
		if g.less(points[bi], points[i]) {
			bi = i
		}
	}
	end := bi
	for end+1 < len(points) && !g.less(points[end+1], points[bi]) && !g.less(points[bi], points[end+1]) {
		end++
	}
	feasible, _, _ := g.key(points[bi])
	return (bi + end) / 2, feasible
}

// wilsonLower is the one-sided Wilson score lower bound of the rate k/n
// at normal quantile z; z = 0 gives k/n itself.
func wilsonLower(k, n int, z float64) float64 {
	if n == 0 {
		return 0
	}
	p, nf := float64(k)/float64(n), float64(n)
	if z == 0 {
		return p
	}
	z2 := z * z
	centre := p + z2/(2*nf)
	half := z * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf))
	return (centre - half) / (1 + z2/nf)
}

// fitter runs the fit procedure with fixed options.
type fitter struct {
	opts FitOptions
}

// result is one run of the procedure on one dataset.
type result struct {
	th     []float32
	global float32
	w      float64
	met    bool
}

// sweep evaluates one global threshold per grid step.
func sweep(ds *dataset) []point {
	th := make([]float32, len(ds.names))
	points := make([]point, gridSteps+1)
	for i := range points {
		points[i] = ds.rates(ds.fill(th, float32(i)/gridSteps))
	}
	return points
}

// tradeOff is the out-of-scope weight at which point i of a curve is
// optimal for accuracy + w × recall: between the steepest slope to a point
// of less recall and the gentlest to one of more (their geometric mean).
func tradeOff(g goal, points []point, i int) float64 {
	acc, rec := g.rates(points[i])
	lo, hi := 0.0, math.Inf(1)
	for _, p := range points {
		a, r := g.rates(p)
		switch {
		case r < rec-1e-12:
			lo = math.Max(lo, (a-acc)/(rec-r))
		case r > rec+1e-12:
			hi = math.Min(hi, (acc-a)/(r-rec))
		}
	}
	switch {
	case math.IsInf(hi, 1) && lo == 0:
		return 1
	case math.IsInf(hi, 1):
		return lo
	case lo <= 0:
		return math.Max(hi, 1e-3)
	}
	return math.Sqrt(lo * hi)
}

// fit runs the procedure on ds; cvShift places per-route thresholds by
// out-of-fold predictions (see FitCV), which costs k more ascents.
func (ft *fitter) fit(ds *dataset, cvShift bool) result {
	g := ft.goal(ds)
	points := sweep(ds)
	gi, met := g.best(points)
	res := result{global: float32(gi) / gridSteps, met: met}
	res.th = ds.fill(make([]float32, len(ds.names)), res.global)
	if g.kind == weighted {
		res.w = g.w
	} else {
		res.w = tradeOff(g, points, gi)
	}
	if ft.opts.GlobalOnly {
		return res
	}
	base := ft.perRoute(ds, res.global, res.w)
	// The shift is searched over the grid; each fold's own thresholds are
	// shifted alike when the shift is cross-validated.
	shifts := make([]float32, 2*int(maxShift*gridSteps)+1)
	for i := range shifts {
		shifts[i] = float32(i-int(maxShift*gridSteps)) / gridSteps
	}
	points = make([]point, len(shifts))
	th := make([]float32, len(ds.names))
	k := ds.folds(ft.opts.Folds)
	if cvShift && k > 1 {
		fold := ds.foldOf(k)
		for j := 0; j < k; j++ {
			train := ds.subset(func(pos int) bool { return fold[pos] != j })
			test := ds.subset(func(pos int) bool { return fold[pos] == j })
			tg := ft.goal(train)
			tp := sweep(train)
			ti, _ := tg.best(tp)
			tw := g.w
			if g.kind != weighted {
				tw = tradeOff(tg, tp, ti)
			}
			fb := ft.perRoute(train, float32(ti)/gridSteps, tw)
			for i, s := range shifts {
				p := test.rates(shifted(th, fb, s, ds.fitted))
				points[i].hits += p.hits
				points[i].fell += p.fell
			}
		}
	} else {
		for i, s := range shifts {
			points[i] = ds.rates(shifted(th, base, s, ds.fitted))
		}
	}
	si, smet := g.best(points)
	res.met = smet
	res.th = append([]float32(nil), shifted(th, base, shifts[si], ds.fitted)...)
	return res
}

// shifted writes base+s, clamped to [0,1], for fitted routes into dst.
func shifted(dst, base []float32, s float32, fitted []bool) []float32 {
	for i, b := range base {
		if fitted[i] {
			dst[i] = min(max(b+s, 0), 1)
		} else {
			dst[i] = b
		}
	}
	return dst
}

// perRoute fits each route's threshold by coordinate ascent on accuracy
// plus w × recall, starting from the global threshold g, and shrinks it
// towards g by the route's support.
func (ft *fitter) perRoute(ds *dataset, g float32, w float64) []float32 {
	th := ds.fill(make([]float32, len(ds.names)), g)
	touches := make([][]int32, len(ds.names))
	for i, e := range ds.ex {
		for _, s := range e.scores {
			if ds.fitted[s.route] {
				touches[s.route] = append(touches[s.route], int32(i))
			}
		}
	}
	var wIn, wOut float64
	if ds.in > 0 {
		wIn = 1 / float64(ds.in)
	}
	if ds.out > 0 {
		wOut = w / float64(ds.out)
	}
	local := func(sub []int32) float64 {
		var s float64
		for _, i := range sub {
			e := &ds.ex[i]
			if e.predict(th) != e.gold {
				continue
			}
			if e.gold < 0 {
				s += wOut
			} else {
				s += wIn
			}
		}
		return s
	}
	const steps = 100
	for pass := 0; pass < 2; pass++ {
		moved := false
		for r, sub := range touches {
			if len(sub) == 0 {
				continue
			}
			cur := th[r]
			bestT, bestS := cur, local(sub)
			for i := 0; i <= steps; i++ {
				t := float32(i) / steps
				th[r] = t
				s := local(sub)
				// Among equally good thresholds keep the nearest to the
				// current one: a move must buy something.
				if s > bestS+1e-12 || (s > bestS-1e-12 && abs32(t-cur) < abs32(bestT-cur)) {
					bestT, bestS = t, s
				}
			}
			th[r] = bestT
			moved = moved || bestT != cur
		}
		if !moved {
			break
		}
	}
	for r := range th {
		if ds.fitted[r] {
			a := float32(float64(ds.support[r]) / (float64(ds.support[r]) + ft.opts.PriorRows))
			th[r] = g + a*(th[r]-g)
		}
	}
	return th
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

// crossValidate runs the whole procedure k times, each on all folds but
// one, and returns each row's route under the thresholds fitted without it
// (-1: fell back), indexed like the original examples.
func (ft *fitter) crossValidate(ds *dataset, k int) []int32 {
	fold := ds.foldOf(k)
	preds := make([]int32, len(ds.ex))
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))
	for j := 0; j < k; j++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(j int) {
			defer func() { <-sem; wg.Done() }()
			train := ds.subset(func(pos int) bool { return fold[pos] != j })
			test := ds.subset(func(pos int) bool { return fold[pos] == j })
			res := ft.fit(train, !ft.opts.inSampleShift)
			for i := range test.ex {
				preds[test.rows[i]] = test.ex[i].predict(res.th)
			}
		}(j)
	}
	wg.Wait()
	return preds
}
