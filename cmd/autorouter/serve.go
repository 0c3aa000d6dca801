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
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/config"
	"github.com/autorouter/autorouter/router/manage"
	"github.com/autorouter/autorouter/router/proxy"
	"github.com/autorouter/autorouter/router/store"
	"github.com/autorouter/autorouter/router/ui"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "LiteLLM proxy config.yaml (required)")
	host := fs.String("host", "0.0.0.0", "address to listen on")
	port := fs.Int("port", 4000, "port to listen on")
	models := fs.String("models", defaultModelsDir(), "directory of local models")
	cache := fs.String("cache", defaultCacheDir(), "utterance-embedding cache directory (\"\" disables it)")
	ort := runtimeFlag(fs)
	maxBody := fs.Int("max-body", 0, "largest request body in bytes; larger ones get 413 (default general_settings.max_request_size_mb, 10 MiB)")
	headerTimeout := fs.Duration("header-timeout", 0, "how long a client may take to send a request's headers (default general_settings.header_timeout, 10s)")
	idleTimeout := fs.Duration("idle-timeout", 0, "how long an idle keep-alive connection stays open (default general_settings.idle_timeout, 30s)")
	writeTimeout := fs.Duration("write-timeout", 0, "how long one write to a client that stopped reading may block (default general_settings.write_timeout, 30s)")
	maxConns := fs.Int("max-conns", 0, "most open client connections (default general_settings.max_connections: half the open-file limit, at most 16384)")
	maxConnsPerIP := fs.Int("max-conns-per-ip", 0, "most open connections from one address (default general_settings.max_connections_per_ip, no limit)")
	watch := fs.Duration("watch", 2*time.Second, "how often to check config and router.json for changes (0 disables; SIGHUP always reloads)")
	grace := fs.Duration("shutdown-timeout", 30*time.Second, "how long in-flight requests and streams may take to finish on shutdown")
	jsonLogs := fs.Bool("json-logs", false, "log JSON lines instead of text")
	dbPath := fs.String("db", defaultDBPath(), "SQLite file for models added through the management API, when store_model_in_db is on and database_url is not a postgres:// URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return usageError{"serve: --config is required"}
	}
	var handler slog.Handler = slog.NewTextHandler(stderr, nil)
	if *jsonLogs {
		handler = slog.NewJSONHandler(stderr, nil)
	}
	logger := slog.New(handler)

	// A bad config fails here, at once, naming the file and the entry.
	cfg, err := config.Load(*cfgPath, config.Options{LookupEnv: os.LookupEnv, Logger: logger})
	if err != nil {
		return err
	}
	lim := cfg.GeneralSettings.Limits
	if *maxBody > 0 {
		lim.MaxRequestSizeMB = float64(*maxBody) / (1 << 20)
	}
	for _, o := range []struct {
		flag time.Duration
		dst  *config.Duration
	}{{*headerTimeout, &lim.HeaderTimeout}, {*idleTimeout, &lim.IdleTimeout}, {*writeTimeout, &lim.WriteTimeout}} {
		if o.flag > 0 {
			*o.dst = config.Duration(o.flag)
		}
	}
	if *maxConns > 0 {
		lim.MaxConnections = *maxConns
	}
	if *maxConnsPerIP > 0 {
		lim.MaxConnectionsPerIP = *maxConnsPerIP
	}
	if err := lim.Validate(); err != nil {
		return usageError{"serve: " + err.Error()}
	}
	srv := proxy.New(proxy.Options{Logger: logger, Limits: lim, OpenFiles: openFileLimit()})
	// The admin page at /ui shows the progress of router builds, so it is
	// mounted before the routers load.
	progress := ui.NewProgress()
	srv.SetUI(ui.New(ui.Options{Client: srv.Client, Progress: progress, Logger: logger}))
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	logger.Info("listening", "addr", ln.Addr().String(), "config", *cfgPath)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	// Load the routers while already listening: liveliness answers at once,
	// readiness turns green when the models and indexes are in.
	loadCtx, cancelLoad := context.WithCancel(ctx)
	defer cancelLoad()
	clientCh := make(chan *router.Client, 1)
	loadErr := make(chan error, 1)
	go func() {
		start := time.Now()
		dbOn, dbOpts := storeOptions(cfg, *dbPath, logger)
		so := manage.StartOptions{Router: router.Options{LookupEnv: os.LookupEnv, Logger: logger,
			ModelsDir: *models, CacheDir: *cache, RuntimeLib: *ort, OnProgress: progress.Update}}
		if dbOn {
			so.Store = &dbOpts
		}
		m, c, err := manage.Start(loadCtx, cfg, so)
		if err != nil {
			loadErr <- err
			return
		}
		srv.SetManager(m)
		if err := srv.SetClient(c); err != nil {
			loadErr <- err
			return
		}
		logger.Info("ready", "routers", c.Routers(), "took", time.Since(start).Round(time.Millisecond))
		clientCh <- c
	}()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var client *router.Client
	onReload := func(err error) {
		if err != nil {
			logger.Error("reload failed; keeping the previous config", "err", err)
		}
	}
	for {
		select {
		case err := <-serveErr:
			return fmt.Errorf("serving: %w", err)
		case err := <-loadErr:
			shutdown(srv, *grace, logger)
			return fmt.Errorf("loading routers: %w", err)
		case client = <-clientCh:
			defer client.Close()
			if *watch > 0 {
				go client.Watch(ctx, *watch, onReload)
			}
		case <-hup:
			if client == nil {
				logger.Warn("SIGHUP ignored: routers are still loading")
				continue
			}
			logger.Info("SIGHUP: reloading")
			onReload(client.Reload(ctx))
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

// storeOptions says whether models are stored in a database and which:
// general_settings.store_model_in_db (or STORE_MODEL_IN_DB=True, LiteLLM's
// switch), database_url (or DATABASE_URL) for Postgres, else the SQLite
// file; secrets are keyed by AUTOROUTER_SALT_KEY (or LITELLM_SALT_KEY),
// else the master key.
func storeOptions(cfg *config.Config, dbPath string, logger *slog.Logger) (bool, store.Options) {
	gs := cfg.GeneralSettings
	on := gs.StoreModelInDB || strings.EqualFold(os.Getenv("STORE_MODEL_IN_DB"), "true")
	url := gs.DatabaseURL.Value()
	if url == "" {
		url = os.Getenv("DATABASE_URL")
	}
	if !store.IsPostgres(url) {
		url = ""
	}
	secret := os.Getenv("AUTOROUTER_SALT_KEY")
	if secret == "" {
		secret = os.Getenv("LITELLM_SALT_KEY")
	}
	if secret == "" {
		secret = gs.MasterKey.Value()
	}
	return on, store.Options{URL: url, Path: dbPath, Secret: secret, Logger: logger}
}

// defaultDBPath is the per-user SQLite file of stored models.
func defaultDBPath() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "autorouter", "autorouter.db")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "autorouter", "autorouter.db")
	}
	return "autorouter.db"
}

// openFileLimit is the process's soft open-file limit, 0 when unknown.
func openFileLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur > 1<<30 {
		return 0
	}
	return int(r.Cur)
}
