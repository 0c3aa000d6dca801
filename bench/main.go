// Command bench is autorouter's end-to-end benchmark harness. One run
// measures proxy overhead against nginx and the Portkey gateway, the cost of
// a routing decision, routed throughput with and without micro-batching,
// scale and cold start, memory, routing quality on CLINC150, and the
// reliability attacks of issue #11 (slow clients, upstream faults,
// disconnects, reloads and shutdown under load), and writes
// bench/REPORT.md with a latency-percentile plot.
//
//	go run ./bench [--quick] [--sections overhead,decision,routed,scale,quality,agent,reliability]
//
// Go micro-benchmarks stay next to their code (go test -bench); this harness
// is for end-to-end and cross-process figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/autorouter/autorouter/bench/fake"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the harness's flags.
type options struct {
	quick    bool
	sections map[string]bool
	out      string // report directory
	work     string // scratch directory for configs, logs and caches
	repo     string
	models   string
	dataset  string
	peers    bool
	keep     bool
}

var allSections = []string{"overhead", "decision", "routed", "scale", "quality", "agent", "reliability"}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "upstream" {
		return runUpstream(ctx, args[1:], stderr)
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "fewer requests and repetitions, full-data quality only: a few minutes instead of the full run")
	sections := fs.String("sections", strings.Join(allSections, ","), "comma-separated sections to run: "+strings.Join(allSections, ", "))
	out := fs.String("out", "", "where REPORT.md and latency.svg go (default <repo>/bench)")
	work := fs.String("work", "", "scratch directory for configs, logs and the embedding cache (default <repo>/bench/out)")
	models := fs.String("models", "", "local models directory (default $AUTOROUTER_MODELS or <repo>/models)")
	dataset := fs.String("clinc", "", "CLINC150 directory (default <repo>/../shared/datasets/clinc150)")
	peers := fs.Bool("peers", true, "install and measure nginx and the Portkey gateway next to autorouter")
	keep := fs.Bool("keep", false, "keep the scratch directory's logs and configs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	repo, err := findRepo()
	if err != nil {
		return err
	}
	o := options{quick: *quick, out: *out, work: *work, repo: repo, models: *models, dataset: *dataset, peers: *peers, keep: *keep, sections: map[string]bool{}}
	for _, s := range strings.Split(*sections, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !contains(allSections, s) {
			return fmt.Errorf("--sections: unknown section %q (valid: %s)", s, strings.Join(allSections, ", "))
		}
		o.sections[s] = true
	}
	if o.out == "" {
		o.out = filepath.Join(repo, "bench")
	}
	if o.work == "" {
		o.work = filepath.Join(repo, "bench", "out")
	}
	if o.models == "" {
		o.models = os.Getenv("AUTOROUTER_MODELS")
	}
	if o.models == "" {
		o.models = filepath.Join(repo, "models")
	}
	if o.dataset == "" {
		o.dataset = filepath.Join(repo, "..", "shared", "datasets", "clinc150")
	}
	h, err := newHarness(ctx, o, stderr)
	if err != nil {
		return err
	}
	defer h.close()
	return h.run(ctx)
}

// findRepo walks up from the working directory to the module root.
func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/autorouter/autorouter") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("run bench inside the autorouter repository (no go.mod for github.com/autorouter/autorouter above %s)", dir)
		}
	}
}

// runUpstream serves the fake OpenAI upstream in this process, so proxies
// and the load generator do not share its runtime: bench upstream --port P.
func runUpstream(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("upstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 0, "port to listen on (0 picks one and prints it)")
	var o fake.Options
	fs.DurationVar(&o.Latency, "latency", 0, "delay before each answer")
	fs.IntVar(&o.ContentBytes, "content-bytes", 256, "assistant message length")
	fs.IntVar(&o.Chunks, "chunks", 16, "content events per stream")
	fs.DurationVar(&o.ChunkDelay, "chunk-delay", 0, "pause between stream events")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := fake.New(o)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		return fmt.Errorf("fake upstream: listening: %w", err)
	}
	fmt.Fprintf(stderr, "fake upstream listening on %s\n", ln.Addr())
	srv := s.Server()
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown()
	}()
	return srv.Serve(ln)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// since is a tiny helper for progress lines.
func since(t time.Time) string { return time.Since(t).Round(100 * time.Millisecond).String() }
