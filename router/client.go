// Package router is autorouter as a Go library: LiteLLM's auto routing and
// its completion path without HTTP. A Client is built from a LiteLLM
// config (a file or Go values); it routes prompts to models by embedding
// them in-process and scoring them against each route's utterances, and
// sends completions to the chosen model's deployments with load balancing,
// retries, cooldowns and fallbacks, streaming included.
//
//	c, err := router.Open(ctx, "config.yaml", router.Options{})
//	resp, err := c.Completion(ctx, &openai.ChatRequest{Model: "auto_router1",
//		Messages: []openai.Message{openai.UserMessage("how to code a program in python")}})
//
// The HTTP proxy (router/proxy) is a thin adapter over the same Client.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/autorouter/autorouter/embed"
	"github.com/autorouter/autorouter/router/config"
	"github.com/autorouter/autorouter/router/upstream"
)

// Options are what a Client needs beyond its config. The zero value works.
type Options struct {
	// LookupEnv resolves os.environ/VAR references in the config and
	// finds the default models directory ($AUTOROUTER_MODELS). nil
	// resolves none; commands pass os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Logger receives load, reload, cooldown and fallback logs. nil
	// discards them.
	Logger *slog.Logger
	// ModelsDir is where local/<name> models live when the config gives no
	// model_path. Default: embed.DefaultModelsDir ($AUTOROUTER_MODELS, else
	// the per-user directory that scripts/setup.sh fills).
	ModelsDir string
	// RuntimeLib is the ONNX Runtime shared library, one per process.
	// Default <ModelsDir>/onnxruntime/libonnxruntime.so.
	RuntimeLib string
	// CacheDir holds the persistent utterance-embedding cache and trained
	// classifier heads. "" disables them.
	CacheDir string
	// OnProgress, when set, is told how the embedding of each router's
	// utterances advances while a config loads.
	OnProgress func(Progress)
	// Cooldowns is the deployments' health; several Clients (or replicas,
	// through upstream.Shared) may share one. nil makes a new one.
	Cooldowns *upstream.Cooldowns
	// Extra, when set, returns deployments added to the model_list of the
	// config file at every Reload: the models stored through the
	// management API.
	Extra func() []config.Deployment
	// Sessions, when set, shares session-affinity decisions between
	// replicas (see router_settings.session_affinity).
	Sessions SessionStore
}

// Client routes and completes requests. It holds one Snapshot of its config
// at a time; Apply and Reload build the next one off to the side and swap
// it in atomically, and requests in flight finish on the one they started
// with. A Client is safe for concurrent use.
type Client struct {
	opts       Options
	logger     *slog.Logger
	encoders   *encoderPool
	transports *upstream.Transports
	cooldowns  *upstream.Cooldowns
	cur        atomic.Pointer[Snapshot]
	seq        atomic.Uint64
	routerSeq  atomic.Uint64
	cache      *decisionCache
	sessions   *sessions
	// applyMu serialises Apply and Reload; requests never take it.
	applyMu sync.Mutex
	closed  bool

	progressMu   sync.Mutex
	progressLast map[string]time.Time
}

// Open loads a LiteLLM proxy config.yaml (and its router.json files),
// validates it and builds a Client: one call.
func Open(ctx context.Context, path string, opts Options) (*Client, error) {
	cfg, err := config.Load(path, config.Options{LookupEnv: opts.LookupEnv, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	return New(ctx, cfg, opts)
}

// New builds a Client for cfg, a config loaded from a file or built in Go
// (see config.Config): it prepares and validates cfg, loads each
// embedding model once, embeds every router's utterances (through the
// cache when CacheDir is set) and builds their indexes. cfg must not be
// changed afterwards.
func New(ctx context.Context, cfg *config.Config, opts Options) (*Client, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts.Logger = logger
	from := "set by the caller"
	if opts.ModelsDir == "" {
		opts.ModelsDir, from = embed.DefaultModelsDir(opts.LookupEnv)
	}
	if opts.RuntimeLib == "" {
		opts.RuntimeLib = embed.RuntimeLibIn(opts.ModelsDir)
	}
	if opts.Cooldowns == nil {
		opts.Cooldowns = upstream.NewCooldowns()
	}
	c := &Client{
		opts:         opts,
		logger:       logger,
		encoders:     &encoderPool{modelsDir: opts.ModelsDir, modelsFrom: from, runtimeLib: opts.RuntimeLib},
		transports:   upstream.NewTransports(),
		cooldowns:    opts.Cooldowns,
		progressLast: map[string]time.Time{},
		cache:        newDecisionCache(0, 0),
		sessions:     newSessions(),
	}
	if err := cfg.Prepare(config.Options{LookupEnv: opts.LookupEnv, Logger: logger}); err != nil {
		if cfg.Path != "" {
			return nil, fmt.Errorf("%s: %w", cfg.Path, err)
		}
		return nil, err
	}
	s, err := c.build(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	c.configure(s)
	c.cur.Store(s)
	return c, nil
}

// build makes a generation of cfg (prepared), reusing prev's unchanged
// routers.
func (c *Client) build(ctx context.Context, cfg *config.Config, prev *Snapshot) (*Snapshot, error) {
	pool, err := upstream.New(cfg, upstream.Options{Transports: c.transports, Cooldowns: c.cooldowns, Logger: c.logger})
	if err != nil {
		return nil, err
	}
	s := &Snapshot{cfg: cfg, pool: pool, client: c, routers: map[string]*autoRouter{}, encoders: map[string]*encoderRef{}}
	s.users.Store(1)
	rs := cfg.RouterSettings
	lim := cfg.GeneralSettings.Limits.WithDefaults(0)
	s.lanes = newLanes(lim.MaxConcurrentRouting, lim.LongPromptChars)
	s.cacheOn = rs.DecisionCacheEntries >= 0
	s.affinity = rs.SessionAffinity
	if k := cfg.GeneralSettings.MasterKey.Value(); k != "" {
		s.masterKey = []byte(k)
	}
	fail := func(err error) (*Snapshot, error) {
		s.free()
		return nil, err
	}
	embedders := map[string]bool{}
	for _, d := range cfg.AutoRouters() {
		embedders[d.Params.AutoRouterEmbeddingModel] = true
	}
	for _, name := range cfg.ModelNames() {
		d := cfg.Group(name)[0]
		if d.Params.Provider() != config.ProviderLocal && !embedders[name] {
			continue
		}
		ref, err := c.encoders.acquire(ctx, d)
		if err != nil {
			return fail(err)
		}
		s.encoders[name] = ref
		s.refs = append(s.refs, ref)
	}
	for _, d := range cfg.AutoRouters() {
		ref := s.encoders[d.Params.AutoRouterEmbeddingModel]
		fp := routerFingerprint(d, ref.key)
		if prev != nil {
			if r := prev.routers[d.ModelName]; r != nil && r.fingerprint == fp {
				s.routers[d.ModelName] = r
				continue
			}
		}
		start := time.Now()
		r, hits, err := c.buildRouter(ctx, cfg, d, ref.enc, fp)
		if err != nil {
			if c.opts.OnProgress != nil {
				c.opts.OnProgress(Progress{Router: d.ModelName, Err: err})
			}
			return fail(fmt.Errorf("auto router %q: %w", d.ModelName, err))
		}
		s.routers[d.ModelName] = r
		c.logger.Info("auto router ready", "router", d.ModelName, "routes", len(r.index.Routes()),
			"utterances", r.index.Len(), "cached", hits, "took", time.Since(start).Round(time.Millisecond))
	}
	// A local encoder loads its model in the background while caches and
	// indexes are built; the generation is ready when they are.
	for name, ref := range s.encoders {
		if r, ok := ref.enc.(interface{ Ready(context.Context) error }); ok {
			if err := r.Ready(ctx); err != nil {
				return fail(fmt.Errorf("embedding model %q: %w", name, err))
			}
		}
	}
	s.seq = c.seq.Add(1)
	return s, nil
}

// configure applies a generation's cache and session settings to the
// client-wide stores, as it goes live.
func (c *Client) configure(s *Snapshot) {
	rs := s.cfg.RouterSettings
	entries, bytes := rs.DecisionCacheEntries, rs.DecisionCacheBytes
	if entries == 0 {
		entries = DefaultCacheEntries
	}
	if bytes <= 0 {
		bytes = DefaultCacheBytes
	}
	c.cache.resize(max(entries, 0), bytes)
	// Entries of routers this generation replaced can never be hit again.
	c.cache.drop(func(id uint64) bool {
		for _, r := range s.routers {
			if r.id == id {
				return true
			}
		}
		return false
	})
	ttl, maxSessions := rs.SessionTTL.Or(DefaultSessionTTL), rs.MaxSessions
	if maxSessions <= 0 {
		maxSessions = DefaultMaxSessions
	}
	c.sessions.configure(ttl, maxSessions, c.opts.Sessions)
}

// CacheStats reports the decision cache's hits, misses and evictions.
func (c *Client) CacheStats() CacheStats { return c.cache.stats() }

// progress logs utterance embedding every few seconds with its rate and
// time left, and tells OnProgress.
func (c *Client) progress(p Progress) {
	if c.opts.OnProgress != nil {
		c.opts.OnProgress(p)
	}
	if p.Total < 500 {
		return
	}
	c.progressMu.Lock()
	last, seen := c.progressLast[p.Router]
	now := time.Now()
	if seen && now.Sub(last) < 3*time.Second && p.Done < p.Total {
		c.progressMu.Unlock()
		return
	}
	c.progressLast[p.Router] = now
	if p.Done >= p.Total {
		delete(c.progressLast, p.Router)
	}
	c.progressMu.Unlock()
	c.logger.Info("embedding utterances", "router", p.Router, "done", p.Done, "total", p.Total,
		"per_second", int(p.PerSecond), "eta", p.ETA().Round(time.Second).String())
}

// Acquire returns the current snapshot for one request's use. Release it
// when the request is done.
func (c *Client) Acquire() *Snapshot {
	for {
		s := c.cur.Load()
		if s.users.Add(1) > 1 {
			return s
		}
		// It was retired between the load and the add; undo and retry
		// on the new current one.
		s.users.Add(-1)
	}
}

// Config returns the current config; read it only.
func (c *Client) Config() *config.Config { return c.cur.Load().cfg }

// Seq numbers the current generation, from 1.
func (c *Client) Seq() uint64 { return c.cur.Load().seq }

// Apply swaps in a new config: it prepares and validates cfg, builds the
// new generation off to the side (reusing unchanged routers and encoders)
// and swaps it in. On any error the current generation stays in place and
// the error says why. cfg must not be changed afterwards.
func (c *Client) Apply(ctx context.Context, cfg *config.Config) error {
	st, err := c.Stage(ctx, cfg)
	if err != nil {
		return err
	}
	return st.Commit()
}

// Staged is a generation built and not yet in service: Commit swaps it
// in, Discard drops it. A caller that must record a change elsewhere (a
// database) before it goes live stages first, records, then commits.
type Staged struct {
	c    *Client
	s    *Snapshot
	done bool
}

// Stage prepares and validates cfg and builds its generation, as Apply
// does, without swapping it in.
func (c *Client) Stage(ctx context.Context, cfg *config.Config) (*Staged, error) {
	if err := cfg.Prepare(config.Options{LookupEnv: c.opts.LookupEnv, Logger: c.logger}); err != nil {
		if cfg.Path != "" {
			return nil, fmt.Errorf("%s: %w", cfg.Path, err)
		}
		return nil, err
	}
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	s, err := c.build(ctx, cfg, c.cur.Load())
	if err != nil {
		return nil, err
	}
	return &Staged{c: c, s: s}, nil
}

// Config is the staged generation's config.
func (st *Staged) Config() *config.Config { return st.s.cfg }

// Commit swaps the staged generation in; requests in flight finish on the
// one they started with.
func (st *Staged) Commit() error {
	c := st.c
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	if st.done {
		return errors.New("router: staged generation already committed or discarded")
	}
	st.done = true
	if c.closed {
		st.s.Release()
		return errClosed
	}
	c.configure(st.s)
	old := c.cur.Swap(st.s)
	old.Release()
	return nil
}

// Discard drops the staged generation, releasing what it holds.
func (st *Staged) Discard() {
	c := st.c
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	if !st.done {
		st.done = true
		st.s.Release()
	}
}

var errClosed = errors.New("router: client closed")

// Reload re-reads the config file the Client was opened from, and every
// router.json it names, and applies it.
func (c *Client) Reload(ctx context.Context) error {
	path := c.Config().Path
	if path == "" {
		return errors.New("reload: the config was not loaded from a file")
	}
	cfg, err := c.LoadFile(path)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	if err := c.Apply(ctx, cfg); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	c.logger.Info("config reloaded", "file", path, "generation", c.Seq())
	return nil
}

// LoadFile loads a config file with the Client's options, and adds the
// Extra deployments.
func (c *Client) LoadFile(path string) (*config.Config, error) {
	cfg, err := config.Load(path, config.Options{LookupEnv: c.opts.LookupEnv, Logger: c.logger})
	if err != nil {
		return nil, err
	}
	if c.opts.Extra != nil {
		cfg.ModelList = append(cfg.ModelList, c.opts.Extra()...)
	}
	return cfg, nil
}

// Close releases the Client's snapshot; its encoders close once requests
// still holding it are done. The Client must not be used afterwards.
func (c *Client) Close() error {
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.cur.Load().Release()
	return nil
}

// Watch polls the config file and the router.json files it names every
// interval and reloads the Client when one changes, calling done with each
// reload's result. It returns when ctx ends.
func (c *Client) Watch(ctx context.Context, interval time.Duration, done func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := statAll(watchedFiles(c.Config()))
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := statAll(watchedFiles(c.Config()))
		changed := len(now) != len(last)
		for f, st := range now {
			if last[f] != st {
				changed = true
			}
		}
		if !changed {
			continue
		}
		err := c.Reload(ctx)
		if done != nil {
			done(err)
		}
		last = statAll(watchedFiles(c.Config()))
		if err != nil {
			// Keep the failed files' stamps, so that the same broken
			// file is not reloaded again every tick.
			last = now
		}
	}
}

// watchedFiles lists a config's file and the router.json files it names.
func watchedFiles(cfg *config.Config) []string {
	if cfg.Path == "" {
		return nil
	}
	files := []string{cfg.Path}
	for _, d := range cfg.AutoRouters() {
		if rf := d.Params.AutoRouterConfig; rf != nil && rf.Path != "" {
			files = append(files, rf.Path)
		}
	}
	return files
}

// stamp is a file's identity for change detection.
type stamp struct {
	mod  time.Time
	size int64
}

func statAll(files []string) map[string]stamp {
	out := make(map[string]stamp, len(files))
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			out[f] = stamp{fi.ModTime(), fi.Size()}
		}
	}
	return out
}
