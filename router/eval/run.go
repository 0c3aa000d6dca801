package eval

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/autorouter/autorouter/router"
)

// Row is one labelled prompt: the route it should go to, or "" when it
// belongs to no route and the default model should answer.
type Row struct {
	Text  string
	Route string
}

// ReadRows reads labelled JSONL, one {"text": ..., "route": "<name>" or
// null} per line; name labels errors.
func ReadRows(r io.Reader, name string) ([]Row, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var rows []Row
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var row struct {
			Text  *string `json:"text"`
			Route *string `json:"route"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil || row.Text == nil {
			return nil, fmt.Errorf("%s line %d: want {\"text\": \"...\", \"route\": \"<name>\" or null}", name, line)
		}
		r := Row{Text: *row.Text}
		if row.Route != nil {
			r.Route = *row.Route
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no rows", name)
	}
	return rows, nil
}

// Result is an evaluation: the report under the router's thresholds and,
// when fitted, the fitted thresholds, the report under them on the same
// rows and its cross-validated estimate on rows the fit did not see.
type Result struct {
	Before     Report             `json:"before"`
	After      *Report            `json:"after,omitempty"`
	Thresholds map[string]float32 `json:"thresholds,omitempty"`
	// CrossValidated is After estimated by k-fold cross-validation: what
	// to expect on new prompts. Nil without a fit or with too few rows.
	CrossValidated *Report `json:"cross_validated,omitempty"`
	// Fit says what the fit optimised and whether it met its target.
	Fit *FitSummary `json:"fit,omitempty"`
	// Curve is in-scope accuracy against out-of-scope recall for one
	// threshold shared by every route, swept over [0,1].
	Curve []CurvePoint `json:"curve,omitempty"`
}

// Run routes every row through the auto router model of c (as real
// requests are routed, in batches) and measures it; with fit set it also
// fits thresholds (see FitCV). It is what 'autorouter eval' and the admin
// page run.
func Run(ctx context.Context, c *router.Client, model string, rows []Row, fit *FitOptions) (Result, error) {
	if fit != nil {
		if err := fit.Validate(); err != nil {
			return Result{}, fmt.Errorf("fit: %w", err)
		}
	}
	cfg := c.Config()
	g := cfg.Group(model)
	if len(g) == 0 || g[0].Params.AutoRouterConfig == nil {
		return Result{}, fmt.Errorf("%q is not an auto router (have: %v)", model, c.Routers())
	}
	var routes []string
	for _, r := range g[0].Params.AutoRouterConfig.Routes {
		routes = append(routes, r.Name)
	}
	texts := make([]string, len(rows))
	for i, r := range rows {
		if r.Route != "" && !slices.Contains(routes, r.Route) {
			return Result{}, fmt.Errorf("row %d: route %q is not a route of %s (have: %v; null marks out-of-scope rows)", i+1, r.Route, model, routes)
		}
		texts[i] = r.Text
	}
	decisions, err := c.RouteTexts(ctx, model, texts)
	if err != nil {
		return Result{}, err
	}
	examples := make([]Example, len(rows))
	for i, d := range decisions {
		examples[i] = Example{Scores: d.Scores, Gold: rows[i].Route}
	}
	res := Result{Before: Evaluate(examples, nil), Curve: Curve(examples, routes)}
	if fit != nil {
		f := FitCV(examples, routes, *fit)
		res.After, res.Thresholds, res.CrossValidated, res.Fit = &f.Report, f.Thresholds, f.CrossValidated, &f.Summary
	}
	return res, nil
}
