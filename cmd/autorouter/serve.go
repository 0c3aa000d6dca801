package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/proxy"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "LiteLLM proxy config.yaml (required)")
	host := fs.String("host", "0.0.0.0", "address to listen on")
	port := fs.Int("port", 4000, "port to listen on")
	models := fs.String("models", defaultModelsDir(), "directory of local models")
	cache := fs.String("cache", defaultCacheDir(), "utterance-embedding cache directory (\"\" disables it)")
	maxBody := fs.Int("max-body", proxy.DefaultMaxBodyBytes, "largest request body in bytes; larger ones get 413")
	watch := fs.Duration("watch", 2*time.Second, "how often to check config and router.json for changes (0 disables; SIGHUP always reloads)")
	grace := fs.Duration("shutdown-timeout", 30*time.Second, "how long in-flight requests and streams may take to finish on shutdown")
	jsonLogs := fs.Bool("json-logs", false, "log JSON lines instead of text")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *config == "" {
		return usageError{"serve: --config is required"}
	}
	var handler slog.Handler = slog.NewTextHandler(stderr, nil)
	if *jsonLogs {
		handler = slog.NewJSONHandler(stderr, nil)
	}
	logger := slog.New(handler)

	cfg, err := router.LoadConfig(*config, router.LoadOptions{LookupEnv: os.LookupEnv, Logger: logger})
	if err != nil {
		return err
	}
	srv, err := proxy.New(cfg, proxy.Options{Logger: logger, MaxBodyBytes: *maxBody})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	logger.Info("listening", "addr", ln.Addr().String(), "config", *config)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	// Load the routers while already serving: liveliness answers at once,
	// readiness turns green when the model and indexes are in.
	loadCtx, cancelLoad := context.WithCancel(ctx)
	defer cancelLoad()
	setCh := make(chan *router.Set, 1)
	loadErr := make(chan error, 1)
	go func() {
		start := time.Now()
		set, err := router.New(loadCtx, cfg, router.Options{LookupEnv: os.LookupEnv, Logger: logger, ModelsDir: *models, CacheDir: *cache})
		if err != nil {
			loadErr <- err
			return
		}
		srv.SetRouter(set, set)
		logger.Info("ready", "routers", set.Names(), "took", time.Since(start).Round(time.Millisecond))
		setCh <- set
	}()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var set *router.Set
	onReload := func(c *router.Config, err error) {
		if err != nil {
			logger.Error("reload failed; keeping the previous config", "err", err)
			return
		}
		if err := srv.SetConfig(c); err != nil {
			logger.Error("reload: applying deployments failed; keeping the previous ones", "err", err)
		}
	}
	for {
		select {
		case err := <-serveErr:
			return fmt.Errorf("serving: %w", err)
		case err := <-loadErr:
			shutdown(srv, *grace, logger)
			return fmt.Errorf("loading routers: %w", err)
		case set = <-setCh:
			defer set.Close()
			if *watch > 0 {
				go set.Watch(ctx, *watch, onReload)
			}
		case <-hup:
			if set == nil {
				logger.Warn("SIGHUP ignored: routers are still loading")
				continue
			}
			logger.Info("SIGHUP: reloading")
			onReload(set.Config(), set.Reload(ctx))
		case <-ctx.Done():
			logger.Info("shutting down", "grace", grace.String())
			cancelLoad()
			return shutdown(srv, *grace, logger)
		}
	}
}

// shutdown stops accepting connections and waits up to grace for requests
// and streams in flight.
func shutdown(srv *proxy.Server, grace time.Duration, logger *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutting down: %w", err)
	}
	logger.Info("stopped")
	return nil
}
