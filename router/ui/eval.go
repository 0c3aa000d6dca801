package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/config"
	"github.com/autorouter/autorouter/router/eval"
)

// MaxEvalRows bounds one POST /ui/api/eval: every row is embedded, and
// 20,000 prompts take tens of seconds on a small machine. Larger sets go
// through 'autorouter eval'.
const MaxEvalRows = 20000

// evalTimeout bounds one evaluation.
const evalTimeout = 10 * time.Minute

// maxConfusions is how many of the most frequent mistakes are listed.
const maxConfusions = 20

// evalRequest is POST /ui/api/eval's body: labelled rows, or the same as
// JSONL text (the 'autorouter eval' format), and optional fitting.
type evalRequest struct {
	Model string    `json:"model"`
	Rows  []evalRow `json:"rows"`
	JSONL *string   `json:"jsonl"`
	// Fit is eval.FitOptions in its JSON names: global, oos_weight,
	// min_oos_recall, min_accuracy, confidence, prior_rows, folds.
	Fit *eval.FitOptions `json:"fit"`
}

// evalRow is one labelled prompt; a null or absent route marks an
// out-of-scope prompt, one the default model should answer.
type evalRow struct {
	Text  *string `json:"text"`
	Route *string `json:"route"`
}

// evalResponse is eval.Result in the API's snake_case, with what the page
// shows beside it.
type evalResponse struct {
	Model string `json:"model"`
	Rows  int    `json:"rows"`
	// Routes are the router's routes, in its order.
	Routes []string `json:"routes"`
	// CurrentThresholds are the routes' thresholds now (a null
	// score_threshold shown as the default it takes).
	CurrentThresholds map[string]float32 `json:"current_thresholds"`
	Before            evalReport         `json:"before"`
	After             *evalReport        `json:"after"`
	// Thresholds are the fitted thresholds; null without fit.
	Thresholds map[string]float32 `json:"thresholds"`
	// CrossValidated estimates After on prompts the fit did not see
	// (k-fold); null without fit or with too few rows.
	CrossValidated *evalReport `json:"cross_validated"`
	// Fit says what the fit optimised and whether it met its target.
	Fit    *eval.FitSummary `json:"fit"`
	TookMS float64          `json:"took_ms"`
}

type evalReport struct {
	InScope          int             `json:"in_scope"`
	OutOfScope       int             `json:"out_of_scope"`
	InScopeAccuracy  float64         `json:"in_scope_accuracy"`
	OutOfScopeRecall float64         `json:"out_of_scope_recall"`
	PerRoute         []routeQuality  `json:"per_route"`
	Confused         []evalConfusion `json:"confused"`
}

type routeQuality struct {
	Route     string  `json:"route"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	Support   int     `json:"support"`
}

// evalConfusion counts prompts labelled Gold (null: out of scope) that
// went to Predicted (null: fell back to the default model).
type evalConfusion struct {
	Gold      *string `json:"gold"`
	Predicted *string `json:"predicted"`
	Count     int     `json:"count"`
}

// eval serves POST /ui/api/eval: it routes every labelled row through the
// router, as 'autorouter eval' does, and fits thresholds when asked.
func (h *Handler) eval(ctx *fasthttp.RequestCtx) {
	c := h.client()
	if c == nil {
		writeLoading(ctx)
		return
	}
	var req evalRequest
	dec := json.NewDecoder(bytes.NewReader(ctx.PostBody()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			writeError(ctx, 400, "invalid_eval", te.Field, fmt.Sprintf("%s: cannot use a JSON %s here, want %s", te.Field, te.Value, te.Type))
			return
		}
		writeError(ctx, 400, "invalid_eval", "", `the body is not an evaluation: want {"model": "<auto router>", "rows": [{"text": "...", "route": "<name>" or null}], "fit": {"global": false, "min_oos_recall": 0.75}} (or "jsonl" instead of "rows"): `+err.Error())
		return
	}
	if req.Model == "" {
		writeError(ctx, 400, "invalid_eval", "model", `model is required: the auto router to evaluate`)
		return
	}
	cfg := c.Config()
	g := cfg.Group(req.Model)
	if len(g) == 0 || g[0].Params.AutoRouterConfig == nil {
		writeError(ctx, 400, "invalid_eval", "model", fmt.Sprintf("model %q is not an auto router (have: %s)", req.Model, strings.Join(c.Routers(), ", ")))
		return
	}
	rows, param, err := req.rows()
	if err != nil {
		writeError(ctx, 400, "invalid_eval", param, err.Error())
		return
	}
	if req.Fit != nil {
		if err := req.Fit.Validate(); err != nil {
			param := "fit"
			if oe := (*eval.OptionError)(nil); errors.As(err, &oe) {
				param = "fit." + oe.Field
			}
			writeError(ctx, 400, "invalid_eval", param, param+": "+err.Error())
			return
		}
	}
	rf := g[0].Params.AutoRouterConfig
	routes := make([]string, len(rf.Routes))
	for i, r := range rf.Routes {
		routes[i] = r.Name
	}
	for i, r := range rows {
		if r.Route != "" && !slices.Contains(routes, r.Route) {
			writeError(ctx, 400, "invalid_eval", "rows", fmt.Sprintf("row %d: route %q is not a route of %s (have: %s; null marks prompts no route should take)", i+1, r.Route, req.Model, strings.Join(routes, ", ")))
			return
		}
	}
	select {
	case h.evalSlot <- struct{}{}:
		defer func() { <-h.evalSlot }()
	default:
		ctx.Response.Header.Set("Retry-After", "5")
		writeError(ctx, 429, "eval_busy", "", "another evaluation is running on this server; retry when it has finished")
		return
	}
	runCtx, cancel := context.WithTimeout(context.Background(), evalTimeout)
	defer cancel()
	start := time.Now()
	res, err := eval.Run(runCtx, c, req.Model, rows, req.Fit)
	if err != nil {
		h.logger.Error("admin page evaluation failed", "router", req.Model, "rows", len(rows), "err", err)
		writeError(ctx, 500, "eval_failed", "", "the evaluation failed: "+err.Error())
		return
	}
	out := evalResponse{
		Model: req.Model, Rows: len(rows), Routes: routes,
		CurrentThresholds: currentThresholds(cfg, g[0]),
		Before:            reportJSON(res.Before),
		Thresholds:        res.Thresholds,
		TookMS:            float64(time.Since(start).Microseconds()) / 1000,
	}
	if res.After != nil {
		a := reportJSON(*res.After)
		out.After = &a
	}
	if res.CrossValidated != nil {
		cv := reportJSON(*res.CrossValidated)
		out.CrossValidated = &cv
	}
	out.Fit = res.Fit
	writeJSON(ctx, 200, out)
}

// rows checks the request's rows (or parses its JSONL) and says which
// field is wrong when they do not do.
func (r *evalRequest) rows() ([]eval.Row, string, error) {
	switch {
	case r.JSONL != nil && r.Rows != nil:
		return nil, "jsonl", errors.New(`send "rows" or "jsonl", not both`)
	case r.JSONL != nil:
		rows, err := eval.ReadRows(strings.NewReader(*r.JSONL), "jsonl")
		if err != nil {
			return nil, "jsonl", err
		}
		if len(rows) > MaxEvalRows {
			return nil, "jsonl", tooMany(len(rows))
		}
		return rows, "", nil
	case len(r.Rows) == 0:
		return nil, "rows", errors.New(`no rows: send "rows": [{"text": "...", "route": "<name>" or null}, ...] or "jsonl"`)
	case len(r.Rows) > MaxEvalRows:
		return nil, "rows", tooMany(len(r.Rows))
	}
	out := make([]eval.Row, len(r.Rows))
	for i, row := range r.Rows {
		if row.Text == nil {
			return nil, "rows", fmt.Errorf("row %d has no text", i+1)
		}
		out[i].Text = *row.Text
		if row.Route != nil {
			out[i].Route = *row.Route
		}
	}
	return out, "", nil
}

func tooMany(n int) error {
	return fmt.Errorf("%d rows, more than the %d one evaluation takes; evaluate a sample here, or the whole set with 'autorouter eval --data FILE'", n, MaxEvalRows)
}

// currentThresholds are the router's thresholds, a null one as the
// default it takes.
func currentThresholds(cfg *config.Config, d *config.Deployment) map[string]float32 {
	rf := d.Params.AutoRouterConfig
	def := float32(router.DefaultLocalThreshold)
	if g := cfg.Group(d.Params.AutoRouterEmbeddingModel); len(g) > 0 {
		def = router.DefaultThreshold(g[0].Params.Provider(), g[0].Params.UpstreamModel())
	}
	if rf.Scoring == config.ScoringClassifier {
		def = router.DefaultClassifierThreshold
	}
	out := make(map[string]float32, len(rf.Routes))
	for _, r := range rf.Routes {
		out[r.Name] = def
		if r.ScoreThreshold != nil {
			out[r.Name] = float32(*r.ScoreThreshold)
		}
	}
	return out
}

func reportJSON(r eval.Report) evalReport {
	out := evalReport{InScope: r.InScope, OutOfScope: r.OutOfScope, InScopeAccuracy: r.InScopeAccuracy,
		OutOfScopeRecall: r.OutOfScopeRecall, PerRoute: []routeQuality{}, Confused: []evalConfusion{}}
	for name, q := range r.PerRoute {
		out.PerRoute = append(out.PerRoute, routeQuality{Route: name, Precision: q.Precision, Recall: q.Recall, Support: q.Support})
	}
	sort.Slice(out.PerRoute, func(i, j int) bool { return out.PerRoute[i].Route < out.PerRoute[j].Route })
	orNull := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	for i, c := range r.Confused {
		if i == maxConfusions {
			break
		}
		out.Confused = append(out.Confused, evalConfusion{Gold: orNull(c.Gold), Predicted: orNull(c.Predicted), Count: c.Count})
	}
	return out
}
