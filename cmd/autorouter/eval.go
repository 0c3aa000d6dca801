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
	texts, gold, err := readLabelled(*data)
	if err != nil {
		return err
	}
	set, name, err := flags.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer set.Close()
	var routes []string
	rf := set.Config().Group(name)[0].Params.AutoRouterConfig
	for _, r := range rf.Routes {
		routes = append(routes, r.Name)
	}
	for i, g := range gold {
		if g != "" && !contains(routes, g) {
			return fmt.Errorf("%s line %d: route %q is not a route of %s (null marks out-of-scope rows)", *data, i+1, g, name)
		}
	}
	decisions, err := set.RouteTexts(ctx, name, texts)
	if err != nil {
		return err
	}
	examples := make([]eval.Example, len(texts))
	for i, d := range decisions {
		examples[i] = eval.Example{Scores: d.Scores, Gold: gold[i]}
	}
	before := eval.Evaluate(examples, nil)
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	if !*fit {
		if *asJSON {
			return json.NewEncoder(w).Encode(before)
		}
		printReport(w, "current thresholds", before, *top)
		return nil
	}
	th, after := eval.Fit(examples, routes, eval.FitOptions{GlobalOnly: *global, OutOfScopeWeight: *oosWeight})
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

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// readLabelled reads {"text": ..., "route": name|null} rows.
func readLabelled(path string) ([]string, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading labelled data: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var texts, gold []string
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var row struct {
			Text  *string `json:"text"`
			Route *string `json:"route"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil || row.Text == nil {
			return nil, nil, fmt.Errorf("%s line %d: want {\"text\": \"...\", \"route\": \"<name>\" or null}", path, line)
		}
		g := ""
		if row.Route != nil {
			g = *row.Route
		}
		texts, gold = append(texts, *row.Text), append(gold, g)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(texts) == 0 {
		return nil, nil, fmt.Errorf("%s: no rows", path)
	}
	return texts, gold, nil
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
