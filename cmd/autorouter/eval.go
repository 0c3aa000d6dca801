package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"

	"github.com/google/renameio/v2"

	"github.com/autorouter/autorouter/router/eval"
)

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := addRouterFlags(fs)
	data := fs.String("data", "", "labelled JSONL: {\"text\": ..., \"route\": \"<name>\" | null} per line (required)")
	fit := fs.Bool("fit", false, "fit thresholds on the data and print the gain; with no target it keeps the out-of-scope recall the current thresholds have and maximises in-scope accuracy")
	write := fs.Bool("write", false, "with --fit: save the fitted thresholds into the router's router.json")
	global := fs.Bool("fit-global", false, "with --fit: one threshold for all routes instead of per-route thresholds shrunk towards it")
	minRecall := fs.Float64("min-oos-recall", 0, "with --fit: maximise in-scope accuracy with out-of-scope recall at least this share (0-1, e.g. 0.75) at --confidence")
	minAcc := fs.Float64("min-accuracy", 0, "with --fit: maximise out-of-scope recall with in-scope accuracy at least this share (0-1, e.g. 0.9) at --confidence")
	oosWeight := fs.Float64("oos-weight", 0, "with --fit: maximise in-scope accuracy + W × out-of-scope recall instead (1 counts both rates the same)")
	confidence := fs.Float64("confidence", eval.DefaultConfidence, "with --min-oos-recall or --min-accuracy: how sure the fit must be that the minimum holds on new prompts (one-sided Wilson bound); 0.5 checks the measured rate")
	priorRows := fs.Float64("prior-rows", eval.DefaultPriorRows, "with --fit: labelled rows a route needs for its threshold to move halfway from the global one to its own best")
	folds := fs.Int("folds", eval.DefaultFolds, "with --fit: k of the k-fold cross-validated estimate; 1 turns it off")
	curve := fs.Bool("curve", false, "print in-scope accuracy against out-of-scope recall for one threshold swept over [0,1]")
	plot := fs.String("plot", "", "draw that curve, with the current and fitted operating points, as SVG into this file")
	top := fs.Int("top", 10, "how many confused pairs and worst routes to print")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" {
		return usageError{"eval: --data is required"}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !*fit {
		for _, name := range []string{"write", "fit-global", "min-oos-recall", "min-accuracy", "oos-weight", "confidence", "prior-rows", "folds"} {
			if set[name] {
				return usageError{fmt.Sprintf("eval: --%s needs --fit", name)}
			}
		}
	}
	var fitOpts *eval.FitOptions
	if *fit {
		fitOpts = &eval.FitOptions{GlobalOnly: *global, OutOfScopeWeight: *oosWeight, MinOutOfScopeRecall: *minRecall,
			MinAccuracy: *minAcc, Confidence: *confidence, PriorRows: *priorRows, Folds: *folds}
		if err := fitOpts.Validate(); err != nil {
			return usageError{"eval: " + err.Error()}
		}
	}
	f, err := os.Open(*data)
	if err != nil {
		return fmt.Errorf("reading labelled data: %w", err)
	}
	rows, err := eval.ReadRows(f, *data)
	f.Close()
	if err != nil {
		return err
	}
	rset, name, err := flags.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer rset.Close()
	rf := rset.Config().Group(name)[0].Params.AutoRouterConfig
	res, err := eval.Run(ctx, rset, name, rows, fitOpts)
	if err != nil {
		return fmt.Errorf("%s: %w", *data, err)
	}
	written := ""
	if *write {
		// Write before printing, so that --json output also reports it.
		path := rf.Path
		if path == "" {
			return fmt.Errorf("eval --write: router %q is configured inline (auto_router_config); move it to a router.json to write thresholds", name)
		}
		if err := eval.WriteThresholds(path, res.Thresholds); err != nil {
			return err
		}
		written = path
	}
	if *plot != "" {
		if err := renameio.WriteFile(*plot, []byte(plotResult(name, res)), 0o644); err != nil {
			return fmt.Errorf("writing the plot: %w", err)
		}
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	if *asJSON {
		if !*fit && !*curve {
			return json.NewEncoder(w).Encode(res.Before)
		}
		out := map[string]any{"before": res.Before}
		if *fit {
			out["after"], out["thresholds"], out["fit"] = res.After, res.Thresholds, res.Fit
			if res.CrossValidated != nil {
				out["cross_validated"] = res.CrossValidated
			}
		}
		if *curve {
			out["curve"] = res.Curve
		}
		if written != "" {
			out["written"] = written
		}
		if *plot != "" {
			out["plot"] = *plot
		}
		return json.NewEncoder(w).Encode(out)
	}
	printReport(w, "current thresholds", res.Before, *top)
	if *fit {
		after, s := *res.After, res.Fit
		printReport(w, "fitted thresholds, on the rows they were fitted on", after, *top)
		fmt.Fprintf(w, "objective: %s\n", s.Objective)
		if !s.TargetMet {
			fmt.Fprintf(w, "warning: no thresholds reach that on these rows; these come closest\n")
		}
		kind := "one threshold for every route"
		if s.PerRoute {
			kind = fmt.Sprintf("per-route thresholds shrunk towards %.3f (a route with n labelled rows moves n/(n+%g) of the way)", s.GlobalThreshold, s.PriorRows)
		}
		fmt.Fprintf(w, "thresholds: %s; best single threshold %.3f\n", kind, s.GlobalThreshold)
		for _, n := range s.Notes {
			fmt.Fprintf(w, "note: %s\n", n)
		}
		fmt.Fprintf(w, "gain on these rows: in-scope accuracy %+.2f points, out-of-scope recall %+.2f points\n",
			100*(after.InScopeAccuracy-res.Before.InScopeAccuracy), 100*(after.OutOfScopeRecall-res.Before.OutOfScopeRecall))
		if cv := res.CrossValidated; cv != nil {
			fmt.Fprintf(w, "cross-validated (%d-fold, what to expect on new prompts): in-scope accuracy %.2f%%, out-of-scope recall %.2f%% (fitted on these rows: %.2f%%, %.2f%%)\n",
				s.Folds, 100*cv.InScopeAccuracy, 100*cv.OutOfScopeRecall, 100*after.InScopeAccuracy, 100*after.OutOfScopeRecall)
		}
		if written != "" {
			fmt.Fprintf(w, "wrote %d thresholds to %s\n", len(res.Thresholds), written)
		}
	}
	if *curve {
		fmt.Fprintln(w)
		printCurve(w, res.Curve)
	}
	if *plot != "" {
		fmt.Fprintf(w, "plot: %s\n", *plot)
	}
	return nil
}

// printCurve prints every tenth point of the curve (steps of 0.05).
func printCurve(w io.Writer, c []eval.CurvePoint) {
	fmt.Fprintln(w, "== one threshold for every route")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "THRESHOLD\tIN-SCOPE ACCURACY\tOUT-OF-SCOPE RECALL\t")
	stride := max(1, eval.CurveSteps/20)
	for i := 0; i < len(c); i += stride {
		fmt.Fprintf(tw, "%.2f\t%.2f%%\t%.2f%%\t\n", c[i].Threshold, 100*c[i].InScopeAccuracy, 100*c[i].OutOfScopeRecall)
	}
	tw.Flush()
}

// plotResult draws the curve with the current and fitted operating points.
func plotResult(router string, res eval.Result) string {
	s := eval.PlotSeries{Name: "one threshold, swept", Curve: res.Curve}
	s.Marks = append(s.Marks, eval.PlotMark{Label: "current", InScopeAccuracy: res.Before.InScopeAccuracy, OutOfScopeRecall: res.Before.OutOfScopeRecall})
	if res.After != nil {
		s.Marks = append(s.Marks, eval.PlotMark{Label: "fitted", InScopeAccuracy: res.After.InScopeAccuracy, OutOfScopeRecall: res.After.OutOfScopeRecall})
	}
	if cv := res.CrossValidated; cv != nil {
		s.Marks = append(s.Marks, eval.PlotMark{Label: "fitted, cross-validated", InScopeAccuracy: cv.InScopeAccuracy, OutOfScopeRecall: cv.OutOfScopeRecall})
	}
	return eval.PlotSVG(fmt.Sprintf("%s: in-scope accuracy against out-of-scope recall (%d + %d labelled prompts)", router, res.Before.InScope, res.Before.OutOfScope), []eval.PlotSeries{s})
}

func printReport(w io.Writer, title string, r eval.Report, top int) {
	fmt.Fprintf(w, "== %s\nin-scope accuracy:   %6.2f%% (%d prompts)\nout-of-scope recall: %6.2f%% (%d prompts)\n",
		title, 100*r.InScopeAccuracy, r.InScope, 100*r.OutOfScopeRecall, r.OutOfScope)
	type rq struct {
		name string
		q    eval.RouteQuality
	}
	var worst []rq
	for n, q := range r.PerRoute {
		worst = append(worst, rq{n, q})
	}
	sort.Slice(worst, func(i, j int) bool {
		if worst[i].q.Recall != worst[j].q.Recall {
			return worst[i].q.Recall < worst[j].q.Recall
		}
		return worst[i].name < worst[j].name
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE (lowest recall first)\tPRECISION\tRECALL\tSUPPORT")
	for _, x := range worst[:min(top, len(worst))] {
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%d\n", x.name, x.q.Precision, x.q.Recall, x.q.Support)
	}
	fmt.Fprintln(tw, "\nGOLD\tPREDICTED\tCOUNT\t")
	for _, c := range r.Confused[:min(top, len(r.Confused))] {
		g, p := c.Gold, c.Predicted
		if g == "" {
			g = "(out of scope)"
		}
		if p == "" {
			p = "(default model)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t\n", g, p, c.Count)
	}
	tw.Flush()
	fmt.Fprintln(w)
}
