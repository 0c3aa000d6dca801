package router

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/autorouter/autorouter/embed"
	"github.com/autorouter/autorouter/router/openai"
)

// ErrUnknownRouter is returned for a model name that is not an auto router.
var ErrUnknownRouter = errors.New("router: not an auto router")

// Options are what New needs beyond the config.
type Options struct {
	// LookupEnv resolves os.environ/VAR references on Reload.
	LookupEnv func(string) (string, bool)
	// Logger receives load, reload and fallback logs. nil discards them.
	Logger *slog.Logger
	// ModelsDir is where local/<name> models live when the config gives no
	// model_path. Default "models".
	ModelsDir string
	// CacheDir holds the persistent utterance-embedding cache. "" disables it.
	CacheDir string
}

// Set is every auto router of one config. It is safe for concurrent use;
// Reload swaps in a new generation atomically, and decisions already under
// way finish on the generation they started with.
type Set struct {
	opts   Options
	logger *slog.Logger
	pool   *encoderPool
	cur    atomic.Pointer[generation]
	// reloadMu serialises Reload; decisions never take it.
	reloadMu sync.Mutex
}

// generation is one immutable load of the config and its routers.
type generation struct {
	cfg     *Config
	routers map[string]*autoRouter
}

// autoRouter is one auto_router/ entry, ready to decide.
type autoRouter struct {
	name         string
	defaultModel string
	enc          embed.Encoder
	index        *Index
	maxChars     int
	window       int
	// vecs holds *[]float32 query buffers of enc.Dim() floats.
	vecs sync.Pool
}

// New builds every auto router in cfg: it loads each embedding model once,
// embeds all utterances (through the persistent cache when CacheDir is set)
// and builds their indexes.
func New(ctx context.Context, cfg *Config, opts Options) (*Set, error) {
	if opts.ModelsDir == "" {
		opts.ModelsDir = "models"
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Set{opts: opts, logger: logger, pool: &encoderPool{modelsDir: opts.ModelsDir}}
	g, err := s.build(ctx, cfg)
	if err != nil {
		s.pool.close()
		return nil, err
	}
	s.cur.Store(g)
	return s, nil
}

func (s *Set) build(ctx context.Context, cfg *Config) (*generation, error) {
	g := &generation{cfg: cfg, routers: map[string]*autoRouter{}}
	for _, d := range cfg.ModelList {
		if !d.IsAutoRouter() {
			continue
		}
		start := time.Now()
		r, hits, err := s.buildRouter(ctx, cfg, d)
		if err != nil {
			return nil, fmt.Errorf("auto router %q: %w", d.ModelName, err)
		}
		g.routers[d.ModelName] = r
		s.logger.Info("auto router ready", "router", d.ModelName, "routes", len(r.index.Routes()),
			"utterances", r.index.Len(), "cached", hits, "took", time.Since(start).Round(time.Millisecond))
	}
	return g, nil
}

// readier is an encoder that finishes loading in the background.
type readier interface {
	Ready(ctx context.Context) error
}

func (s *Set) buildRouter(ctx context.Context, cfg *Config, d Deployment) (*autoRouter, int, error) {
	rf := d.Router
	embDep := cfg.Group(d.Params.AutoRouterEmbeddingModel)[0]
	enc, err := s.pool.get(ctx, cfg, embDep)
	if err != nil {
		return nil, 0, err
	}
	var texts []string
	var rowRoute []int32
	routes := make([]IndexRoute, len(rf.Routes))
	defThreshold := DefaultThreshold(embDep.Params.Provider(), embDep.Params.UpstreamModel())
	classifier := rf.Scoring == ScoringClassifier
	if classifier {
		defThreshold = DefaultClassifierThreshold
	}
	for i, r := range rf.Routes {
		routes[i] = IndexRoute{Name: r.Name, Threshold: defThreshold}
		if r.ScoreThreshold != nil {
			routes[i].Threshold = float32(*r.ScoreThreshold)
		}
		for _, u := range r.Utterances {
			texts = append(texts, u)
			rowRoute = append(rowRoute, int32(i))
		}
	}
	dim := enc.Dim()
	vecs := make([]float32, len(texts)*dim)
	hits := 0
	if s.opts.CacheDir != "" {
		c := embed.OpenCache(s.cachePath(enc), s.logger)
		if hits, err = c.EmbedAll(ctx, enc, texts, vecs); err != nil {
			return nil, 0, fmt.Errorf("embedding utterances: %w", err)
		}
		if err := c.Save(); err != nil {
			s.logger.Warn("could not save the embedding cache; the next start embeds again", "err", err)
		}
	} else if err := enc.Embed(ctx, texts, vecs); err != nil {
		return nil, 0, fmt.Errorf("embedding utterances: %w", err)
	}
	agg, err := ParseAggregation(rf.Aggregation)
	if err != nil {
		return nil, 0, err
	}
	var clf *Classifier
	if classifier {
		if clf, err = s.classifier(ctx, enc, rf, vecs, dim, rowRoute); err != nil {
			return nil, 0, err
		}
	}
	ix, err := NewIndex(dim, routes, vecs, rowRoute, IndexOptions{TopK: rf.TopK, Aggregation: agg, Classifier: clf})
	if err != nil {
		return nil, 0, err
	}
	// A local encoder loads its model in the background while the cache
	// and index above are built; the router is ready when it is.
	if r, ok := enc.(readier); ok {
		if err := r.Ready(ctx); err != nil {
			return nil, 0, fmt.Errorf("embedding model %q: %w", embDep.ModelName, err)
		}
	}
	r := &autoRouter{
		name:         d.ModelName,
		defaultModel: d.Params.AutoRouterDefaultModel,
		enc:          enc,
		index:        ix,
		maxChars:     rf.MaxTextChars,
		window:       rf.ConversationWindow,
	}
	r.vecs.New = func() any { v := make([]float32, dim); return &v }
	return r, hits, nil
}

// classifier loads the router's trained head from the cache when it was
// trained on exactly these utterances with this model, else trains it and
// caches it.
func (s *Set) classifier(ctx context.Context, enc embed.Encoder, rf *RouterFile, vecs []float32, dim int, rowRoute []int32) (*Classifier, error) {
	h := sha256.New()
	if id, ok := enc.(embed.Identifier); ok {
		h.Write([]byte(id.ModelID()))
	}
	// The version changes with the training defaults, so heads trained
	// under older defaults are retrained rather than reused.
	fmt.Fprintf(h, "\x00%s\x00", "head/v3")
	for _, r := range rf.Routes {
		fmt.Fprintf(h, "%q", r.Name)
		for _, u := range r.Utterances {
			fmt.Fprintf(h, "%q", u)
		}
	}
	key := hex.EncodeToString(h.Sum(nil))
	path := ""
	if s.opts.CacheDir != "" {
		path = filepath.Join(s.opts.CacheDir, "head-"+key[:16]+".bin")
		if data, err := os.ReadFile(path); err == nil {
			if c, err := UnmarshalClassifier(data, key); err == nil {
				return c, nil
			} else {
				s.logger.Warn("cached classifier head ignored; retraining", "file", path, "err", err)
			}
		}
	}
	start := time.Now()
	c, err := TrainClassifier(ctx, vecs, dim, rowRoute, len(rf.Routes), TrainOptions{})
	if err != nil {
		return nil, err
	}
	s.logger.Info("classifier head trained", "routes", len(rf.Routes), "utterances", len(rowRoute), "took", time.Since(start).Round(time.Millisecond))
	if path != "" {
		if err := writeFileAtomic(path, c.MarshalBinary(key)); err != nil {
			s.logger.Warn("could not cache the classifier head", "err", err)
		}
	}
	return c, nil
}

// writeFileAtomic writes data beside path and renames it into place.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// cachePath gives each model its own cache file.
func (s *Set) cachePath(enc embed.Encoder) string {
	id := "unidentified"
	if i, ok := enc.(embed.Identifier); ok {
		sum := sha256.Sum256([]byte(i.ModelID()))
		id = hex.EncodeToString(sum[:8])
	}
	return filepath.Join(s.opts.CacheDir, "embeddings-"+id+".bin")
}

// Config returns the config of the current generation.
func (s *Set) Config() *Config { return s.cur.Load().cfg }

// IsRouter reports whether name is an auto router's model_name.
func (s *Set) IsRouter(name string) bool {
	_, ok := s.cur.Load().routers[name]
	return ok
}

// Names lists the auto routers, sorted.
func (s *Set) Names() []string {
	g := s.cur.Load()
	names := make([]string, 0, len(g.routers))
	for n := range g.routers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Encoder returns the shared encoder of an embedding model_name, for
// serving /v1/embeddings in-process.
func (s *Set) Encoder(modelName string) (embed.Encoder, error) {
	cfg := s.Config()
	group := cfg.Group(modelName)
	if len(group) == 0 {
		return nil, fmt.Errorf("model %q is not in model_list", modelName)
	}
	if group[0].Params.Provider() != "local" {
		return nil, fmt.Errorf("model %q is not a local embedding model", modelName)
	}
	return s.pool.get(context.Background(), cfg, group[0])
}

// Route decides where a chat request for the auto router name goes. It
// fails only for an unknown router; embedding failures fall back to the
// default model, with the cause in Decision.Err.
func (s *Set) Route(ctx context.Context, name string, msgs []openai.Message) (Decision, error) {
	r, ok := s.cur.Load().routers[name]
	if !ok {
		return Decision{}, fmt.Errorf("%w: %q", ErrUnknownRouter, name)
	}
	text, ok := RoutingText(msgs, r.window, r.maxChars)
	if !ok {
		return r.fallback(ReasonNoUserMessage, "", nil), nil
	}
	return s.decide(ctx, r, text), nil
}

// RouteText decides for a bare prompt, as if it were the only user message.
func (s *Set) RouteText(ctx context.Context, name, text string) (Decision, error) {
	r, ok := s.cur.Load().routers[name]
	if !ok {
		return Decision{}, fmt.Errorf("%w: %q", ErrUnknownRouter, name)
	}
	return s.decide(ctx, r, truncateRunes(text, maxCharsOr(r.maxChars), false)), nil
}

func maxCharsOr(n int) int {
	if n <= 0 {
		return DefaultMaxTextChars
	}
	return n
}

func (s *Set) decide(ctx context.Context, r *autoRouter, text string) Decision {
	if text == "" {
		return r.fallback(ReasonEmptyText, text, nil)
	}
	vp := r.vecs.Get().(*[]float32)
	defer r.vecs.Put(vp)
	t0 := time.Now()
	if err := r.enc.Embed(ctx, []string{text}, *vp); err != nil {
		s.logger.Warn("embedding failed; using the default model", "router", r.name, "err", err)
		d := r.fallback(ReasonEmbedError, text, err)
		d.EmbedTime = time.Since(t0)
		return d
	}
	t1 := time.Now()
	d := r.decideVec(text, *vp)
	d.EmbedTime, d.ScoreTime = t1.Sub(t0), time.Since(t1)
	return d
}

// decideVec scores an embedded query and picks the winner.
func (r *autoRouter) decideVec(text string, vec []float32) Decision {
	scores := r.index.Score_Into(make([]RouteScore, 0, 8), vec)
	if w, ok := Winner(scores); ok {
		return Decision{Router: r.name, Model: w.Route, Route: w.Route, Score: w.Score, Scores: scores, Text: text}
	}
	d := r.fallback(ReasonBelowThreshold, text, nil)
	d.Scores = scores
	return d
}

func (r *autoRouter) fallback(reason, text string, err error) Decision {
	return Decision{Router: r.name, Model: r.defaultModel, Fallback: true, Reason: reason, Err: err, Text: text}
}

// RouteTexts decides for many prompts at once, embedding them in batches;
// the CLI's --batch mode and eval use it. Decisions come back in input order.
func (s *Set) RouteTexts(ctx context.Context, name string, texts []string) ([]Decision, error) {
	r, ok := s.cur.Load().routers[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownRouter, name)
	}
	dim := r.enc.Dim()
	out := make([]Decision, len(texts))
	const batch = 64
	vecs := make([]float32, batch*dim)
	for start := 0; start < len(texts); start += batch {
		chunk := texts[start:min(start+batch, len(texts))]
		cut := make([]string, len(chunk))
		for i, t := range chunk {
			cut[i] = truncateRunes(t, maxCharsOr(r.maxChars), false)
		}
		if err := r.enc.Embed(ctx, cut, vecs[:len(cut)*dim]); err != nil {
			return nil, fmt.Errorf("embedding prompts %d-%d: %w", start, start+len(chunk)-1, err)
		}
		for i, t := range cut {
			if t == "" {
				out[start+i] = r.fallback(ReasonEmptyText, t, nil)
				continue
			}
			out[start+i] = r.decideVec(t, vecs[i*dim:(i+1)*dim])
		}
	}
	return out, nil
}

// Reload re-reads the config file and every router.json, builds the new
// routers off to the side and swaps them in. On any error the current
// routers stay in place and the error says why.
func (s *Set) Reload(ctx context.Context) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	path := s.Config().Path
	if path == "" {
		return errors.New("reload: the config was not loaded from a file")
	}
	cfg, err := LoadConfig(path, LoadOptions{LookupEnv: s.opts.LookupEnv, Logger: s.logger})
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	g, err := s.build(ctx, cfg)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	s.cur.Store(g)
	s.logger.Info("config reloaded", "file", path, "routers", len(g.routers))
	return nil
}

// Close releases the encoders. Decisions must not be made after Close.
func (s *Set) Close() error { return s.pool.close() }
