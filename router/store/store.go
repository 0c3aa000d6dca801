// Package store keeps the models added through the management API in a
// database: an embedded SQLite file by default (one binary, one machine, no
// server), or PostgreSQL when many replicas share one. It is LiteLLM's
// LiteLLM_ProxyModelTable: one row per deployment, with its litellm_params
// and model_info as JSON, secrets encrypted at rest. Every write bumps one
// version number, so that replicas notice changes (Postgres also notifies
// them with LISTEN/NOTIFY); the schema is versioned and migrated at Open.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/autorouter/autorouter/router/config"
)

// Row is one stored deployment.
type Row struct {
	// ID is the deployment's id, also its model_info.id (a UUID).
	ID        string
	ModelName string
	Params    config.LiteLLMParams
	Info      config.ModelInfo
	CreatedAt time.Time
	UpdatedAt time.Time
	CreatedBy string
	UpdatedBy string
}

// Deployment is the row as a model_list entry.
func (r Row) Deployment() config.Deployment {
	info := r.Info.Clone()
	info.ID = r.ID
	params := r.Params
	params.AutoRouterConfig = params.AutoRouterConfig.Clone()
	return config.Deployment{ModelName: r.ModelName, Params: params, ModelInfo: info, Source: config.SourceDB}
}

// Options say which database to use.
type Options struct {
	// URL is a postgres:// or postgresql:// URL; empty means SQLite at Path.
	URL string
	// Path is the SQLite file; its directory is created.
	Path string
	// Secret keys the encryption of secrets at rest: AUTOROUTER_SALT_KEY,
	// else the master key.
	Secret string
	// Logger receives migration and notification logs. nil discards them.
	Logger *slog.Logger
}

// Store is an open model database. It is safe for concurrent use.
type Store struct {
	db       *sql.DB
	postgres bool
	url      string
	seal     *sealer
	logger   *slog.Logger
}

// IsPostgres reports whether url names a PostgreSQL database.
func IsPostgres(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// Open connects, migrates the schema and returns the store.
func Open(ctx context.Context, opts Options) (*Store, error) {
	seal, err := newSealer(opts.Secret)
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{seal: seal, logger: logger, url: opts.URL}
	switch {
	case IsPostgres(opts.URL):
		cc, err := pgx.ParseConfig(opts.URL)
		if err != nil {
			return nil, fmt.Errorf("store: database_url is not a valid postgres URL: %w", redactURL(err, opts.URL))
		}
		s.db, s.postgres = stdlib.OpenDB(*cc), true
		s.db.SetMaxOpenConns(8)
	case opts.URL != "":
		return nil, errors.New("store: database_url must be a postgres:// URL (leave it empty for the embedded SQLite file)")
	default:
		if opts.Path == "" {
			return nil, errors.New("store: no SQLite path")
		}
		if err := os.MkdirAll(filepath.Dir(opts.Path), 0o700); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		// WAL lets readers go on while a writer writes; immediate
		// transactions take the write lock at BEGIN, so two writers
		// serialise instead of failing at commit.
		dsn := "file:" + opts.Path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		if s.db, err = sql.Open("sqlite", dsn); err != nil {
			return nil, fmt.Errorf("store: opening %s: %w", opts.Path, err)
		}
		s.db.SetMaxOpenConns(4)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.db.PingContext(pingCtx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("store: cannot reach the database (%s): %w", s.Where(), redactURL(err, opts.URL))
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// Where names the database for logs, without credentials.
func (s *Store) Where() string {
	if !s.postgres {
		return "sqlite"
	}
	if cc, err := pgx.ParseConfig(s.url); err == nil {
		return fmt.Sprintf("postgres %s:%d/%s", cc.Host, cc.Port, cc.Database)
	}
	return "postgres"
}

// redactURL removes a URL (which may hold a password) from an error.
func redactURL(err error, url string) error {
	if url == "" || !strings.Contains(err.Error(), url) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), url, "[database_url]"))
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// q rewrites ? placeholders as $n for Postgres.
func (s *Store) q(query string) string {
	if !s.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// migrations are applied in order, each in its own transaction; the
// schema's version is the number applied. A migration is written once
// with {{json}} where the column type differs: TEXT on SQLite, JSONB on
// Postgres.
var migrations = []string{
	`CREATE TABLE autorouter_models (
		model_id TEXT PRIMARY KEY,
		model_name TEXT NOT NULL,
		litellm_params {{json}} NOT NULL,
		model_info {{json}} NOT NULL,
		created_at BIGINT NOT NULL,
		created_by TEXT NOT NULL DEFAULT '',
		updated_at BIGINT NOT NULL,
		updated_by TEXT NOT NULL DEFAULT '');
	CREATE INDEX autorouter_models_name ON autorouter_models (model_name);
	CREATE TABLE autorouter_state (id INTEGER PRIMARY KEY, version BIGINT NOT NULL);
	INSERT INTO autorouter_state (id, version) VALUES (1, 0);`,
}

// migrate applies the migrations not applied yet. On Postgres an advisory
// lock keeps two replicas starting together from migrating twice.
func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: migrating: %w", err)
	}
	defer conn.Close()
	if s.postgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(7340213)`); err != nil {
			return fmt.Errorf("store: migrating: %w", err)
		}
		defer conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock(7340213)`)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS autorouter_schema (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("store: migrating: %w", err)
	}
	var version int
	err = conn.QueryRowContext(ctx, `SELECT version FROM autorouter_schema`).Scan(&version)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := conn.ExecContext(ctx, `INSERT INTO autorouter_schema (version) VALUES (0)`); err != nil {
			return fmt.Errorf("store: migrating: %w", err)
		}
	case err != nil:
		return fmt.Errorf("store: reading the schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("store: the database's schema is version %d, newer than this autorouter knows (%d); upgrade autorouter", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		jsonType := "TEXT"
		if s.postgres {
			jsonType = "JSONB"
		}
		stmt := strings.ReplaceAll(migrations[i], "{{json}}", jsonType)
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("store: migration %d: %w", i+1, err)
		}
		for _, part := range strings.Split(stmt, ";") {
			if strings.TrimSpace(part) == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, part); err != nil {
				tx.Rollback()
				return fmt.Errorf("store: migration %d: %w", i+1, err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE autorouter_schema SET version = ?`), i+1); err != nil {
			tx.Rollback()
			return fmt.Errorf("store: migration %d: %w", i+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("store: migration %d: %w", i+1, err)
		}
		s.logger.Info("store: schema migrated", "db", s.Where(), "version", i+1)
	}
	return nil
}

// Version is the number of writes ever made; it changes with every write.
func (s *Store) Version(ctx context.Context) (int64, error) {
	var v int64
	if err := s.db.QueryRowContext(ctx, `SELECT version FROM autorouter_state WHERE id = 1`).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: reading the version: %w", err)
	}
	return v, nil
}

// BadRow is a stored row that cannot be used as it is, and why: its secret
// cannot be decrypted, say. Row holds what could be read of it.
type BadRow struct {
	Row
	Err error
}

// List returns every row, oldest first, and the version they are at. Rows
// that cannot be decoded come back in bad, keyed by id, not in rows.
func (s *Store) List(ctx context.Context) ([]Row, int64, map[string]BadRow, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: s.postgres})
	if err != nil {
		return nil, 0, nil, fmt.Errorf("store: listing models: %w", err)
	}
	defer tx.Rollback()
	rows, version, bad, err := s.list(ctx, tx)
	if err != nil {
		return nil, 0, nil, err
	}
	return rows, version, bad, tx.Commit()
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) list(ctx context.Context, q querier) ([]Row, int64, map[string]BadRow, error) {
	var version int64
	if err := q.QueryRowContext(ctx, `SELECT version FROM autorouter_state WHERE id = 1`).Scan(&version); err != nil {
		return nil, 0, nil, fmt.Errorf("store: reading the version: %w", err)
	}
	rs, err := q.QueryContext(ctx, `SELECT model_id, model_name, litellm_params, model_info, created_at, created_by, updated_at, updated_by
		FROM autorouter_models ORDER BY created_at, model_id`)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("store: listing models: %w", err)
	}
	defer rs.Close()
	var out []Row
	bad := map[string]BadRow{}
	for rs.Next() {
		var r Row
		var params, info []byte
		var created, updated int64
		if err := rs.Scan(&r.ID, &r.ModelName, &params, &info, &created, &r.CreatedBy, &updated, &r.UpdatedBy); err != nil {
			return nil, 0, nil, fmt.Errorf("store: reading a model: %w", err)
		}
		r.CreatedAt, r.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
		if err := json.Unmarshal(info, &r.Info); err != nil {
			bad[r.ID] = BadRow{r, fmt.Errorf("stored model %q (%s): model_info: %w", r.ModelName, r.ID, err)}
			continue
		}
		if err := s.decodeParams(params, &r.Params); err != nil {
			bad[r.ID] = BadRow{r, fmt.Errorf("stored model %q (%s): %w", r.ModelName, r.ID, err)}
			continue
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, 0, nil, fmt.Errorf("store: listing models: %w", err)
	}
	return out, version, bad, nil
}

// ErrConflict means the store changed since the version a write was based
// on; the caller re-reads and tries again.
var ErrConflict = errors.New("store: the models changed meanwhile")

// Change is one write: rows to insert or replace, and ids to delete.
type Change struct {
	Put    []Row
	Delete []string
	// By names who made it, for created_by/updated_by.
	By string
}

// Write applies c in one transaction if the store is still at version
// base, bumps the version and tells the other replicas. It returns the new
// version, or ErrConflict when another write came first.
func (s *Store) Write(ctx context.Context, base int64, c Change) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("store: writing: %w", err)
	}
	defer tx.Rollback()
	lock := `SELECT version FROM autorouter_state WHERE id = 1`
	if s.postgres {
		lock += ` FOR UPDATE`
	}
	var cur int64
	if err := tx.QueryRowContext(ctx, lock).Scan(&cur); err != nil {
		return 0, fmt.Errorf("store: writing: %w", err)
	}
	if cur != base {
		return 0, ErrConflict
	}
	now := time.Now().UnixMilli()
	for _, r := range c.Put {
		params, err := s.encodeParams(r.Params)
		if err != nil {
			return 0, err
		}
		info, err := json.Marshal(r.Info)
		if err != nil {
			return 0, fmt.Errorf("store: encoding model_info: %w", err)
		}
		created := now
		if !r.CreatedAt.IsZero() {
			created = r.CreatedAt.UnixMilli()
		}
		createdBy := r.CreatedBy
		if createdBy == "" {
			createdBy = c.By
		}
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO autorouter_models (model_id, model_name, litellm_params, model_info, created_at, created_by, updated_at, updated_by)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (model_id) DO UPDATE SET model_name = excluded.model_name, litellm_params = excluded.litellm_params,
				model_info = excluded.model_info, updated_at = excluded.updated_at, updated_by = excluded.updated_by`),
			r.ID, r.ModelName, string(params), string(info), created, createdBy, now, c.By)
		if err != nil {
			return 0, fmt.Errorf("store: writing model %q: %w", r.ModelName, err)
		}
	}
	for _, id := range c.Delete {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM autorouter_models WHERE model_id = ?`), id); err != nil {
			return 0, fmt.Errorf("store: deleting model %s: %w", id, err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE autorouter_state SET version = ? WHERE id = 1`), cur+1); err != nil {
		return 0, fmt.Errorf("store: writing: %w", err)
	}
	if s.postgres {
		// Delivered to every listening replica when the transaction commits.
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify('`+notifyChannel+`', $1)`, fmt.Sprint(cur+1)); err != nil {
			return 0, fmt.Errorf("store: notifying: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		if !s.postgres && strings.Contains(err.Error(), "SQLITE_BUSY") {
			return 0, ErrConflict
		}
		return 0, fmt.Errorf("store: writing: %w", err)
	}
	return cur + 1, nil
}

// encodeParams writes litellm_params as stored: JSON with api_key
// encrypted (config.Secret marshals redacted, so it is put in by hand).
func (s *Store) encodeParams(p config.LiteLLMParams) ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("store: encoding litellm_params: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("store: encoding litellm_params: %w", err)
	}
	delete(m, "api_key")
	if k := p.APIKey.Value(); k != "" {
		sealed, err := s.seal.seal(k)
		if err != nil {
			return nil, err
		}
		m["api_key"], _ = json.Marshal(sealed)
	}
	return json.Marshal(m)
}

func (s *Store) decodeParams(b []byte, p *config.LiteLLMParams) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("litellm_params: %w", err)
	}
	key := ""
	if raw, ok := m["api_key"]; ok {
		var sealed string
		if err := json.Unmarshal(raw, &sealed); err != nil {
			return fmt.Errorf("litellm_params.api_key: %w", err)
		}
		plain, err := s.seal.open(sealed)
		if err != nil {
			return err
		}
		key = plain
		delete(m, "api_key")
	}
	rest, _ := json.Marshal(m)
	if err := json.Unmarshal(rest, p); err != nil {
		return fmt.Errorf("litellm_params: %w", err)
	}
	p.APIKey = config.Secret(key)
	return nil
}

// notifyChannel is the Postgres channel writes are announced on.
const notifyChannel = "autorouter_models"

// Listen calls changed after every write any replica makes, until ctx
// ends: on Postgres through LISTEN/NOTIFY (reconnecting after errors),
// plus, on both databases, a version check every interval as the safety
// net (and SQLite's only means, as other processes may write the file).
func (s *Store) Listen(ctx context.Context, interval time.Duration, changed func()) {
	if s.postgres {
		go s.listenPostgres(ctx, changed)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	last, _ := s.Version(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		v, err := s.Version(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.logger.Warn("store: cannot check the models' version; serving the last known models", "db", s.Where(), "err", err)
			}
			continue
		}
		if v != last {
			last = v
			changed()
		}
	}
}

func (s *Store) listenPostgres(ctx context.Context, changed func()) {
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, changed)
		if ctx.Err() != nil {
			return
		}
		s.logger.Warn("store: lost the Postgres notification connection; reconnecting", "db", s.Where(), "err", redactURL(err, s.url), "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
	}
}

func (s *Store) listenOnce(ctx context.Context, changed func()) error {
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	// Changes made while no connection listened are caught up at once.
	changed()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		changed()
	}
}
