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

	"github.com/autorouter/autorouter/router/eval"
)

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := addRouterFlags(fs)
	data := fs.String("data", "", "labelled JSONL: {\"text\": ..., \"route\": \"<name>\" | null} per line (required)")
	fit := fs.Bool("fit", false, "search per-route thresholds on the data and print the gain")
	write := fs.Bool("write", false, "with --fit: save the fitted thresholds into the router's router.json")
	global := fs.Bool("fit-global", false, "with --fit: one threshold for all routes (per-route thresholds overfit when routes have few labelled rows)")
	oosWeight := fs.Float64("oos-weight", 0, "with --fit: what a point of out-of-scope recall is worth in points of in-scope accuracy; 0 (default) weighs by rows, maximising the share of all labelled prompts routed right; 1 counts both rates the same")
	top := fs.Int("top", 10, "how many confused pairs and worst routes to print")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" {
		return usageError{"eval: --data is required"}
	}
	if *write && !*fit {
		return usageError{"eval: --write needs --fit"}
	}
	if !(*oosWeight >= 0) {
		return usageError{fmt.Sprintf("eval: --oos-weight %g must be 0 or more", *oosWeight)}
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
	set, name, err := flags.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer set.Close()
	rf := set.Config().Group(name)[0].Params.AutoRouterConfig
	var fitOpts *eval.FitOptions
	if *fit {
		fitOpts = &eval.FitOptions{GlobalOnly: *global, OutOfScopeWeight: *oosWeight}
	}
	res, err := eval.Run(ctx, set, name, rows, fitOpts)
	if err != nil {
		return fmt.Errorf("%s: %w", *data, err)
	}
	before := res.Before
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	if !*fit {
		if *asJSON {
			return json.NewEncoder(w).Encode(before)
		}
		printReport(w, "current thresholds", before, *top)
		return nil
	}
	th, after := res.Thresholds, *res.After
	written := ""
	if *write {
		// Write before printing, so that --json output also reports it.
		path := rf.Path
		if path == "" {
			return fmt.Errorf("eval --write: router %q is configured inline (auto_router_config); move it to a router.json to write thresholds", name)
		}
		if err := eval.WriteThresholds(path, th); err != nil {
			return err
		}
		written = path
	}
	if *asJSON {
		out := map[string]any{"before": before, "after": after, "thresholds": th}
		if written != "" {
			out["written"] = written
		}
		return json.NewEncoder(w).Encode(out)
	}
	printReport(w, "current thresholds", before, *top)
	printReport(w, "fitted thresholds", after, *top)
	fmt.Fprintf(w, "gain: in-scope accuracy %+.2f points, out-of-scope recall %+.2f points\n",
		100*(after.InScopeAccuracy-before.InScopeAccuracy), 100*(after.OutOfScopeRecall-before.OutOfScopeRecall))
	if written != "" {
		fmt.Fprintf(w, "wrote %d thresholds to %s\n", len(th), written)
	}
	return nil
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
