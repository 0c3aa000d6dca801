package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/autorouter/autorouter/router"
)

// routerFlags are the flags route and eval share.
type routerFlags struct {
	config, router, models, cache, runtime *string
	verbose                                *bool
}

func addRouterFlags(fs *flag.FlagSet) routerFlags {
	return routerFlags{
		config:  fs.String("config", "", "LiteLLM proxy config.yaml (required)"),
		router:  fs.String("router", "", "auto router model_name (default: the only one in the config)"),
		models:  fs.String("models", defaultModelsDir(), "directory of local models"),
		cache:   fs.String("cache", defaultCacheDir(), "utterance-embedding cache directory (\"\" disables it)"),
		runtime: runtimeFlag(fs),
		verbose: fs.Bool("v", false, "log loading progress to stderr"),
	}
}

// defaultCacheDir is the per-user cache: $XDG_CACHE_HOME/autorouter or
// ~/.cache/autorouter; "" when neither can be found.
func defaultCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "autorouter")
}

// open loads the config and builds its routers, and picks the router to use.
func (f routerFlags) open(ctx context.Context, stderr io.Writer) (*router.Client, string, error) {
	if *f.config == "" {
		return nil, "", usageError{"--config is required"}
	}
	level := slog.LevelWarn
	if *f.verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	set, err := router.Open(ctx, *f.config, f.options(logger))
	if err != nil {
		return nil, "", err
	}
	name := *f.router
	names := set.Routers()
	switch {
	case name == "" && len(names) == 1:
		name = names[0]
	case name == "":
		set.Close()
		return nil, "", usageError{fmt.Sprintf("the config has %d auto routers (%s); pick one with --router", len(names), strings.Join(names, ", "))}
	case !slices.Contains(names, name):
		set.Close()
		return nil, "", usageError{fmt.Sprintf("--router %q is not an auto router in %s (have: %s)", name, *f.config, strings.Join(names, ", "))}
	}
	return set, name, nil
}

// options are the library options the flags give.
func (f routerFlags) options(logger *slog.Logger) router.Options {
	return router.Options{LookupEnv: os.LookupEnv, Logger: logger, ModelsDir: *f.models, CacheDir: *f.cache, RuntimeLib: *f.runtime}
}

func runRoute(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("route", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rf := addRouterFlags(fs)
	asJSON := fs.Bool("json", false, "print the decision as JSON")
	batch := fs.Bool("batch", false, "read prompts from stdin (one per line, or JSONL {\"text\": ...}) and print one JSON decision per line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !*batch && fs.NArg() == 0 {
		return usageError{"route: give a prompt, or --batch to read prompts from stdin"}
	}
	set, name, err := rf.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer set.Close()
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	if *batch {
		texts, err := readPrompts(os.Stdin)
		if err != nil {
			return err
		}
		decisions, err := set.RouteTexts(ctx, name, texts)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(w)
		for _, d := range decisions {
			if err := enc.Encode(d); err != nil {
				return fmt.Errorf("writing output: %w", err)
			}
		}
		return nil
	}
	d, err := set.RouteText(ctx, name, strings.Join(fs.Args(), " "))
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(w).Encode(d)
	}
	printDecision(w, d)
	return nil
}

// readPrompts reads one prompt per line: plain text, or a JSON object with
// a "text" field.
func readPrompts(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var texts []string
	for line := 1; sc.Scan(); line++ {
		s := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(s), "{") {
			var row struct {
				Text *string `json:"text"`
			}
			if err := json.Unmarshal([]byte(s), &row); err != nil || row.Text == nil {
				return nil, fmt.Errorf("stdin line %d: a JSON line needs a \"text\" string field", line)
			}
			s = *row.Text
		}
		texts = append(texts, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading stdin: %w", err)
	}
	return texts, nil
}

func printDecision(w io.Writer, d router.Decision) {
	route := d.Route
	if d.Fallback {
		route = "(none: " + d.Reason + ")"
	}
	fmt.Fprintf(w, "model:  %s\nroute:  %s\nscore:  %.4f\n", d.Model, route, d.Score)
	if d.Err != nil {
		fmt.Fprintf(w, "error:  %v\n", d.Err)
	}
	fmt.Fprintf(w, "embed:  %v   score: %v\n\n", d.EmbedTime, d.ScoreTime)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tSCORE\tTHRESHOLD\tPASSED")
	for _, s := range d.Scores {
		fmt.Fprintf(tw, "%s\t%.4f\t%.2f\t%v\n", s.Route, s.Score, s.Threshold, s.Passed)
	}
	tw.Flush()
}
