// Package manage is the model management plane: LiteLLM's /model API
// operations (add, update, delete, list, validate) over the models stored
// in a database, merged with the config file's models and applied live.
// It knows no HTTP; router/proxy adapts it.
//
// A write is validated exactly as config.yaml is, its generation is built
// off to the side (only changed routers are re-embedded), then it is
// stored, then swapped in: it lands and goes live, or changes nothing.
// Replicas sharing a database converge by the store's change
// notifications.
package manage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/config"
	"github.com/autorouter/autorouter/router/store"
	"github.com/autorouter/autorouter/router/upstream"
)

// Errors for errors.Is at the HTTP edge.
var (
	// ErrInvalid is a write that does not validate; the message says why
	// and names the entry, as config.yaml errors do.
	ErrInvalid = errors.New("invalid model")
	// ErrNotFound is an id that names no model.
	ErrNotFound = errors.New("model not found")
	// ErrInConfig is a write to a model defined in config.yaml.
	ErrInConfig = errors.New("model in config")
	// ErrNoStore means store_model_in_db is off.
	ErrNoStore = errors.New("store_model_in_db is off")
	// ErrStore is a database failure.
	ErrStore = errors.New("model database unavailable")
)

// Manager applies stored models to a router.Client. It is safe for
// concurrent use; writes are serialised.
type Manager struct {
	db     atomic.Pointer[store.Store] // nil while no database is open
	path   string                      // the config file
	logger *slog.Logger
	env    func(string) (string, bool)
	client *router.Client

	mu      sync.Mutex // serialises writes and syncs
	rowsMu  sync.RWMutex
	rows    []store.Row             // applied stored rows
	bad     map[string]store.BadRow // stored rows not applied, by id, and why
	version int64
}

// Options are what a Manager needs beyond its store.
type Options struct {
	// Path is the config file whose models the stored ones add to.
	Path string
	// LookupEnv resolves os.environ/VAR references, as for the file.
	LookupEnv func(string) (string, bool)
	// Logger receives sync and validation logs. nil discards them.
	Logger *slog.Logger
}

// New makes a manager; st may be nil (store_model_in_db off: models can
// be listed, not written).
func New(st *store.Store, opts Options) *Manager {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{path: opts.Path, logger: logger, env: opts.LookupEnv, bad: map[string]store.BadRow{}}
	if st != nil {
		m.db.Store(st)
	}
	return m
}

// st is the database, nil while none is open.
func (m *Manager) st() *store.Store { return m.db.Load() }

// SetStore installs a database opened late (one unreachable at start);
// the next Sync applies its models.
func (m *Manager) SetStore(st *store.Store) { m.db.Store(st) }

func (m *Manager) prepare(cfg *config.Config) error {
	return cfg.Prepare(config.Options{LookupEnv: m.env})
}

// Extra is the stored models as deployments, for router.Options.Extra.
func (m *Manager) Extra() []config.Deployment {
	m.rowsMu.RLock()
	defer m.rowsMu.RUnlock()
	out := make([]config.Deployment, len(m.rows))
	for i, r := range m.rows {
		out[i] = r.Deployment()
	}
	return out
}

// Enabled reports whether models can be stored.
func (m *Manager) Enabled() bool { return m.st() != nil }

// Store is the database, or nil.
func (m *Manager) Store() *store.Store { return m.st() }

// Load reads the stored models and returns the config to start with: the
// file's models plus every stored model that validates with them. Models
// that do not are left out and logged, naming the model and the reason;
// they never stop a replica from starting.
func (m *Manager) Load(ctx context.Context, file *config.Config) (*config.Config, error) {
	if m.st() == nil {
		return file, nil
	}
	rows, version, bad, err := m.st().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStore, err)
	}
	accepted := make([]store.Row, 0, len(rows))
	for _, r := range rows {
		cfg := merged(file, append(slices.Clone(accepted), r))
		if err := m.prepare(cfg); err != nil {
			bad[r.ID] = store.BadRow{Row: r, Err: fmt.Errorf("stored model %q (%s): %w", r.ModelName, r.ID, err)}
			continue
		}
		accepted = append(accepted, r)
	}
	for _, b := range bad {
		m.logger.Error("stored model not loaded; fix or delete it through /model/update or /model/delete", "err", b.Err)
	}
	m.setRows(accepted, bad, version)
	return merged(file, accepted), nil
}

// SetRows forgets the applied stored rows, so that the next Sync applies
// them afresh (after starting on the file alone).
func (m *Manager) SetRows(rows []store.Row) { m.setRows(rows, map[string]store.BadRow{}, -1) }

// Attach gives the manager the client it applies changes to.
func (m *Manager) Attach(c *router.Client) { m.client = c }

func (m *Manager) setRows(rows []store.Row, bad map[string]store.BadRow, version int64) {
	m.rowsMu.Lock()
	m.rows, m.bad, m.version = rows, bad, version
	m.rowsMu.Unlock()
}

// merged is the file's config with rows added to its model_list.
func merged(file *config.Config, rows []store.Row) *config.Config {
	cfg := &config.Config{RouterSettings: file.RouterSettings, GeneralSettings: file.GeneralSettings, Path: file.Path}
	cfg.ModelList = make([]config.Deployment, 0, len(file.ModelList)+len(rows))
	for _, d := range file.ModelList {
		if d.Source == config.SourceDB {
			continue
		}
		d.Params.AutoRouterConfig = d.Params.AutoRouterConfig.Clone()
		cfg.ModelList = append(cfg.ModelList, d)
	}
	for _, r := range rows {
		cfg.ModelList = append(cfg.ModelList, r.Deployment())
	}
	return cfg
}

// fileConfig loads the config file afresh, without stored models.
func (m *Manager) fileConfig() (*config.Config, error) {
	cfg := m.client.Config()
	if m.path == "" {
		return merged(cfg, nil), nil
	}
	file, err := config.Load(m.path, config.Options{LookupEnv: m.env})
	if err != nil {
		// The file broke since it was loaded; manage on what is serving.
		m.logger.Warn("config file does not load; managing models on the running config", "err", err)
		return merged(cfg, nil), nil
	}
	return file, nil
}

// Run keeps this replica in step with the database until ctx ends: after
// every write any replica makes it applies the stored models.
func (m *Manager) Run(ctx context.Context, interval time.Duration) {
	if m.st() == nil {
		return
	}
	kick := make(chan struct{}, 1)
	go m.st().Listen(ctx, interval, func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	})
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		}
		if err := m.Sync(ctx); err != nil && ctx.Err() == nil {
			m.logger.Error("applying stored models failed; serving the previous ones", "err", err)
		}
	}
}

// Sync applies the stored models if they changed since the last apply.
// A stored model that cannot be applied (its embedding model does not
// load, say) is left out and logged; the others go live.
func (m *Manager) Sync(ctx context.Context) error {
	if m.st() == nil || m.client == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rows, version, bad, err := m.st().List(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStore, err)
	}
	m.rowsMu.RLock()
	same := version == m.version
	m.rowsMu.RUnlock()
	if same {
		return nil
	}
	file, err := m.fileConfig()
	if err != nil {
		return err
	}
	start := time.Now()
	staged, err := m.client.Stage(ctx, merged(file, rows))
	if err != nil {
		// Find the rows at fault: add them one at a time, each staged on
		// top of the last good set (unchanged routers are reused).
		var accepted []store.Row
		for _, r := range rows {
			st, err := m.client.Stage(ctx, merged(file, append(slices.Clone(accepted), r)))
			if err != nil {
				bad[r.ID] = store.BadRow{Row: r, Err: fmt.Errorf("stored model %q (%s): %w", r.ModelName, r.ID, err)}
				m.logger.Error("stored model not applied; fix or delete it", "model", r.ModelName, "id", r.ID, "err", err)
				continue
			}
			if staged != nil {
				staged.Discard()
			}
			staged, accepted = st, append(accepted, r)
		}
		rows = accepted
		if staged == nil {
			staged, err = m.client.Stage(ctx, merged(file, nil))
			if err != nil {
				return err
			}
		}
	}
	if err := staged.Commit(); err != nil {
		return err
	}
	m.setRows(rows, bad, version)
	m.logger.Info("stored models applied", "models", len(rows), "version", version, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Input is a model as the API takes it: LiteLLM's model_name,
// litellm_params and model_info.
type Input struct {
	ModelName string               `json:"model_name"`
	Params    config.LiteLLMParams `json:"litellm_params"`
	Info      config.ModelInfo     `json:"model_info"`
}

// Add validates a new model, stores it and applies it; with dryRun it
// only validates. It returns the stored row, with its new id.
func (m *Manager) Add(ctx context.Context, in Input, by string, dryRun bool) (store.Row, error) {
	now := time.Now().UTC()
	row := store.Row{ID: uuid.NewString(), ModelName: in.ModelName, Params: in.Params, Info: in.Info,
		CreatedAt: now, UpdatedAt: now, CreatedBy: by, UpdatedBy: by}
	if in.Info.ID != "" {
		row.ID = in.Info.ID
	}
	return row, m.write(ctx, by, dryRun, func(file *config.Config, rows []store.Row) ([]store.Row, store.Change, error) {
		if slices.ContainsFunc(rows, func(r store.Row) bool { return r.ID == row.ID }) || idInFile(file, row.ID) {
			return nil, store.Change{}, fmt.Errorf("%w: model_info.id %q is already taken; leave it out to get a new one", ErrInvalid, row.ID)
		}
		return append(rows, row), store.Change{Put: []store.Row{row}}, nil
	})
}

// Update merges patch into the stored model id: model_name, and the keys
// of litellm_params and model_info it holds (a key set to null is
// removed). A redacted secret in the patch keeps the stored one. With
// dryRun it runs every check and returns the merged row, storing nothing.
func (m *Manager) Update(ctx context.Context, id string, patch Patch, by string, dryRun bool) (store.Row, error) {
	var out store.Row
	err := m.write(ctx, by, dryRun, func(file *config.Config, rows []store.Row) ([]store.Row, store.Change, error) {
		i := slices.IndexFunc(rows, func(r store.Row) bool { return r.ID == id })
		if i < 0 {
			return nil, store.Change{}, m.missing(file, id, "edit")
		}
		r, err := patch.apply(rows[i])
		if err != nil {
			return nil, store.Change{}, err
		}
		r.UpdatedAt, r.UpdatedBy = time.Now().UTC(), by
		rows = slices.Clone(rows)
		rows[i], out = r, r
		return rows, store.Change{Put: []store.Row{r}}, nil
	})
	return out, err
}

// Delete removes the stored model id.
func (m *Manager) Delete(ctx context.Context, id, by string) error {
	return m.write(ctx, by, false, func(file *config.Config, rows []store.Row) ([]store.Row, store.Change, error) {
		i := slices.IndexFunc(rows, func(r store.Row) bool { return r.ID == id })
		if i < 0 {
			return nil, store.Change{}, m.missing(file, id, "delete")
		}
		return slices.Delete(slices.Clone(rows), i, i+1), store.Change{Delete: []string{id}}, nil
	})
}

// missing says why id is not a stored model.
func (m *Manager) missing(file *config.Config, id, verb string) error {
	if idInFile(file, id) {
		return fmt.Errorf("%w: Can't %s model. Model in config. Store model in db via `/model/new` to %s it", ErrInConfig, verb, verb)
	}
	return fmt.Errorf("%w: no model with id %q (see /model/info)", ErrNotFound, id)
}

// idInFile reports whether id names a config.yaml deployment: its
// model_info.id, or the id derived from its position.
func idInFile(file *config.Config, id string) bool {
	for i, d := range file.ModelList {
		if d.Source == config.SourceDB {
			continue
		}
		if d.ModelInfo.ID == id || (d.ModelInfo.ID == "" && fmt.Sprintf("%s/%d", d.ModelName, i) == id) {
			return true
		}
	}
	return false
}

// write runs one change: edit computes the new stored rows from the
// current ones; the result is validated, staged, stored and committed,
// retrying when another replica wrote meanwhile.
func (m *Manager) write(ctx context.Context, by string, dryRun bool, edit func(file *config.Config, rows []store.Row) ([]store.Row, store.Change, error)) error {
	if m.st() == nil {
		return fmt.Errorf("%w: set general_settings.store_model_in_db: true (or STORE_MODEL_IN_DB=True) to add, edit or delete models through the API", ErrNoStore)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for attempt := 0; ; attempt++ {
		rows, version, _, err := m.st().List(ctx)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrStore, err)
		}
		m.rowsMu.RLock()
		bad := m.bad
		m.rowsMu.RUnlock()
		// Rows that were left out stay out of validation, so that one bad
		// row does not block every other write.
		good := slices.DeleteFunc(slices.Clone(rows), func(r store.Row) bool { _, isBad := bad[r.ID]; return isBad })
		file, err := m.fileConfig()
		if err != nil {
			return err
		}
		next, change, err := edit(file, good)
		if err != nil {
			return err
		}
		for _, r := range change.Put {
			if err := checkRow(file, r); err != nil {
				return err
			}
		}
		cfg := merged(file, next)
		if err := m.prepare(cfg); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		staged, err := m.client.Stage(ctx, merged(file, next))
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if dryRun {
			staged.Discard()
			return nil
		}
		change.By = by
		newVersion, err := m.st().Write(ctx, version, change)
		if errors.Is(err, store.ErrConflict) && attempt < 5 {
			staged.Discard()
			continue
		}
		if err != nil {
			staged.Discard()
			return fmt.Errorf("%w: %w", ErrStore, err)
		}
		if err := staged.Commit(); err != nil {
			return err
		}
		m.setRows(next, bad, newVersion)
		return nil
	}
}

// checkRow rejects what the config's validation cannot see: a stored
// model that takes a config.yaml model's name.
func checkRow(file *config.Config, r store.Row) error {
	if strings.TrimSpace(r.ModelName) == "" {
		return fmt.Errorf("%w: model_name is required", ErrInvalid)
	}
	for _, d := range file.ModelList {
		if d.Source != config.SourceDB && d.ModelName == r.ModelName {
			return fmt.Errorf("%w: model_name %q is defined in config.yaml; stored models cannot share a config model's name, pick another", ErrInvalid, r.ModelName)
		}
	}
	if r.Params.Model == "" {
		return fmt.Errorf("%w: model %q: litellm_params.model is required, e.g. openai/gpt-4o, auto_router/<name> or mock/test", ErrInvalid, r.ModelName)
	}
	return nil
}

// Patch is a partial update: any of model_name, litellm_params and
// model_info, merged into the stored row.
type Patch struct {
	ModelName *string                    `json:"model_name"`
	Params    map[string]json.RawMessage `json:"litellm_params"`
	Info      map[string]json.RawMessage `json:"model_info"`
}

// apply merges p into r.
func (p Patch) apply(r store.Row) (store.Row, error) {
	if p.ModelName != nil {
		r.ModelName = *p.ModelName
	}
	if len(p.Params) > 0 {
		cur, err := json.Marshal(r.Params)
		if err != nil {
			return r, err
		}
		var m map[string]json.RawMessage
		_ = json.Unmarshal(cur, &m)
		delete(m, "api_key") // marshalled redacted; restored below
		key := r.Params.APIKey
		for k, v := range p.Params {
			if k == "api_key" {
				var s *string
				if err := json.Unmarshal(v, &s); err != nil {
					return r, fmt.Errorf("%w: litellm_params.api_key must be a string", ErrInvalid)
				}
				switch {
				case s == nil:
					key = ""
				case *s != config.Redacted:
					key = config.Secret(*s)
				}
				continue
			}
			if string(v) == "null" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		b, _ := json.Marshal(m)
		var params config.LiteLLMParams
		if err := json.Unmarshal(b, &params); err != nil {
			return r, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		params.APIKey = key
		r.Params = params
	}
	if len(p.Info) > 0 {
		cur, err := json.Marshal(r.Info)
		if err != nil {
			return r, err
		}
		var m map[string]json.RawMessage
		_ = json.Unmarshal(cur, &m)
		for k, v := range p.Info {
			if k == "id" {
				continue // the id is the row's
			}
			if string(v) == "null" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		b, _ := json.Marshal(m)
		var info config.ModelInfo
		if err := json.Unmarshal(b, &info); err != nil {
			return r, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		r.Info = info
	}
	return r, nil
}

// Entry is one deployment as the API lists it.
type Entry struct {
	Deployment config.Deployment
	// Row is the stored row of a stored model, nil for config models.
	Row *store.Row
	// Err says why a stored model is not serving, nil when it is.
	Err error
}

// List returns every deployment: config models first, in file order, then
// stored models (those not serving included, with why).
func (m *Manager) List() []Entry {
	snap := m.client.Acquire()
	defer snap.Release()
	cfg := snap.Config()
	m.rowsMu.RLock()
	rows, bad := slices.Clone(m.rows), m.bad
	m.rowsMu.RUnlock()
	byID := map[string]*store.Row{}
	for i := range rows {
		byID[rows[i].ID] = &rows[i]
	}
	var out []Entry
	for i, d := range cfg.ModelList {
		e := Entry{Deployment: d}
		if d.Source == config.SourceDB {
			e.Row = byID[d.ModelInfo.ID]
		} else if d.ModelInfo.ID == "" {
			e.Deployment.ModelInfo.ID = fmt.Sprintf("%s/%d", d.ModelName, i)
		}
		out = append(out, e)
	}
	for _, b := range bad {
		r := b.Row
		out = append(out, Entry{Deployment: r.Deployment(), Row: &r, Err: b.Err})
	}
	return out
}

// StartOptions say how Start builds a serving client.
type StartOptions struct {
	// Router are the client's options; Start sets Extra and Cooldowns.
	Router router.Options
	// Store opens the model database; nil leaves store_model_in_db off.
	Store *store.Options
	// Interval is how often the database's version is checked, besides
	// Postgres's notifications. Default 1 s.
	Interval time.Duration
}

// Start builds the client a server runs on, with the stored models: it
// opens the database (an unreachable one is logged and retried in the
// background while the file's models serve), loads the stored models that
// validate, builds the client (leaving out stored models that do not
// build), shares cooldowns through Redis when router_settings name one,
// and keeps the replica in step with the database until ctx ends.
func Start(ctx context.Context, file *config.Config, o StartOptions) (*Manager, *router.Client, error) {
	logger := o.Router.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Router.Cooldowns == nil {
		o.Router.Cooldowns = upstream.NewCooldowns()
	}
	m := New(nil, Options{Path: file.Path, LookupEnv: o.Router.LookupEnv, Logger: logger})
	o.Router.Extra = m.Extra
	startCfg := file
	if o.Store != nil {
		st, err := store.Open(ctx, *o.Store)
		if err != nil {
			logger.Error("model database unavailable at start; serving the config file's models and retrying in the background", "err", err)
			go m.openLater(ctx, *o.Store, o.Interval)
		} else {
			logger.Info("model database open", "db", st.Where())
			m.SetStore(st)
			if c, err := m.Load(ctx, file); err != nil {
				logger.Error("reading stored models failed; serving the config file's models", "err", err)
			} else {
				startCfg = c
			}
		}
	}
	rdb, err := store.RedisFromSettings(ctx, file.RouterSettings)
	if err != nil {
		logger.Error("redis unavailable; cooldowns and sessions stay per replica", "err", err)
	} else if rdb != nil {
		store.ShareCooldowns(ctx, rdb, o.Router.Cooldowns, logger)
		o.Router.Sessions = store.NewSessionStore(rdb, logger)
		logger.Info("sharing cooldowns and session decisions through redis")
		go func() { <-ctx.Done(); rdb.Close() }()
	}
	c, err := router.New(ctx, startCfg, o.Router)
	if err != nil && startCfg != file {
		logger.Error("stored models do not load together; starting on the config file and adding them one by one", "err", err)
		m.SetRows(nil)
		c, err = router.New(ctx, merged(file, nil), o.Router)
	}
	if err != nil {
		if st := m.st(); st != nil {
			st.Close()
		}
		return nil, nil, err
	}
	m.Attach(c)
	if m.st() != nil {
		if err := m.Sync(ctx); err != nil {
			logger.Error("applying stored models failed", "err", err)
		}
		go m.Run(ctx, o.Interval)
	}
	return m, c, nil
}

// openLater retries a database that was unreachable at start.
func (m *Manager) openLater(ctx context.Context, opts store.Options, interval time.Duration) {
	delay := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		st, err := store.Open(ctx, opts)
		if err != nil {
			delay = min(2*delay, 30*time.Second)
			continue
		}
		m.logger.Info("model database reachable again; applying stored models", "db", st.Where())
		m.SetStore(st)
		m.SetRows(nil)
		for m.client == nil && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
		}
		if err := m.Sync(ctx); err != nil {
			m.logger.Error("applying stored models failed", "err", err)
		}
		m.Run(ctx, interval)
		return
	}
}

// Close closes the database.
func (m *Manager) Close() error {
	if st := m.st(); st != nil {
		return st.Close()
	}
	return nil
}
