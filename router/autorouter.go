package router

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/renameio/v2"

	"github.com/autorouter/autorouter/embed"
	"github.com/autorouter/autorouter/router/config"
)

// autoRouter is one auto_router/ entry, ready to decide. It is immutable,
// so an unchanged router is carried into the next generation as it is.
type autoRouter struct {
	// id names this router in the decision cache: unique per build.
	id           uint64
	name         string
	defaultModel string
	// fingerprint identifies everything the router was built from: its
	// routes and settings, default model and encoder.
	fingerprint string
	enc         embed.Encoder
	index       *Index
	// utterances are the index's rows' texts, for Nearest.
	utterances []string
	maxChars   int
	window     int
	// batching reports a micro-batching encoder (see lanes).
	batching bool
	// clip, when set, cuts a long text to maxTokens tokens before it is
	// embedded (router.json max_embed_tokens); headTail keeps both ends.
	clip      embed.Clipper
	maxTokens int
	headTail  bool
	// vecs holds *[]float32 query buffers of enc.Dim() floats.
	vecs sync.Pool
}

// routerFingerprint hashes what building d's router depends on.
func routerFingerprint(d *config.Deployment, encKey string) string {
	h := sha256.New()
	rf, _ := json.Marshal(d.Params.AutoRouterConfig)
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", rf, d.Params.AutoRouterDefaultModel, encKey)
	return hex.EncodeToString(h.Sum(nil))
}

// buildRouter embeds the router's utterances (through the persistent cache
// when there is one) and builds its index; classifier routers also get
// their trained head.
func (c *Client) buildRouter(ctx context.Context, cfg *config.Config, d *config.Deployment, enc embed.Encoder, fingerprint string) (*autoRouter, int, error) {
	rf := d.Params.AutoRouterConfig
	embDep := cfg.Group(d.Params.AutoRouterEmbeddingModel)[0]
	n := rf.Utterances()
	texts := make([]string, 0, n)
	rowRoute := make([]int32, 0, n)
	routes := make([]IndexRoute, len(rf.Routes))
	defThreshold := DefaultThreshold(embDep.Params.Provider(), embDep.Params.UpstreamModel())
	classifier := rf.Scoring == config.ScoringClassifier
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
	progress := func(done, total int, rate float64) {
		c.progress(Progress{Router: d.ModelName, Done: done, Total: total, PerSecond: rate})
	}
	if c.opts.CacheDir != "" {
		cache := embed.OpenCache(c.cachePath(enc), c.logger)
		var err error
		if hits, err = cache.EmbedAll(ctx, enc, texts, vecs, progress); err != nil {
			return nil, 0, fmt.Errorf("embedding utterances: %w", err)
		}
		if err := cache.Save(); err != nil {
			c.logger.Warn("could not save the embedding cache; the next start embeds again", "err", err)
		}
	} else if err := embed.EmbedProgress(ctx, enc, texts, vecs, progress); err != nil {
		return nil, 0, fmt.Errorf("embedding utterances: %w", err)
	}
	agg, err := ParseAggregation(rf.Aggregation)
	if err != nil {
		return nil, 0, err
	}
	var clf *Classifier
	if classifier {
		if clf, err = c.classifier(ctx, enc, rf, vecs, dim, rowRoute); err != nil {
			return nil, 0, err
		}
		if clf, err = blendForHead(rf.Head, clf, vecs, rowRoute); err != nil {
			return nil, 0, err
		}
	}
	ix, err := NewIndex(dim, routes, vecs, rowRoute, IndexOptions{TopK: rf.TopK, Aggregation: agg, Classifier: clf})
	if err != nil {
		return nil, 0, err
	}
	r := &autoRouter{
		id:           c.routerSeq.Add(1),
		name:         d.ModelName,
		defaultModel: d.Params.AutoRouterDefaultModel,
		fingerprint:  fingerprint,
		enc:          enc,
		index:        ix,
		utterances:   texts,
		maxChars:     rf.MaxTextChars,
		window:       rf.ConversationWindow,
	}
	_, r.batching = enc.(*embed.Batcher)
	if rf.MaxEmbedTokens > 0 {
		if cl, ok := enc.(embed.Clipper); ok {
			r.clip, r.maxTokens, r.headTail = cl, rf.MaxEmbedTokens, rf.LongText == config.LongTextHeadTail
		} else {
			c.logger.Warn("router.json max_embed_tokens needs a local encoder; ignored", "router", d.ModelName)
		}
	}
	r.vecs.New = func() any { v := make([]float32, dim); return &v }
	return r, hits, nil
}

// classifier loads the router's trained head from the cache when it was
// trained on exactly these utterances with this model, else trains it and
// caches it.
func (c *Client) classifier(ctx context.Context, enc embed.Encoder, rf *config.RouterFile, vecs []float32, dim int, rowRoute []int32) (*Classifier, error) {
	h := sha256.New()
	if id, ok := enc.(embed.Identifier); ok {
		h.Write([]byte(id.ModelID()))
	}
	// The version changes with the training defaults, so heads trained
	// under older defaults are retrained rather than reused.
	fmt.Fprintf(h, "\x00%s\x00", "head/v3"+headKey(rf.Head))
	for _, r := range rf.Routes {
		fmt.Fprintf(h, "%q", r.Name)
		for _, u := range r.Utterances {
			fmt.Fprintf(h, "%q", u)
		}
	}
	key := hex.EncodeToString(h.Sum(nil))
	path := ""
	if c.opts.CacheDir != "" {
		path = filepath.Join(c.opts.CacheDir, "head-"+key[:16]+".bin")
		if data, err := os.ReadFile(path); err == nil {
			clf, err := UnmarshalClassifier(data, key)
			if err == nil {
				return clf, nil
			}
			c.logger.Warn("cached classifier head ignored; retraining", "file", path, "err", err)
		}
	}
	start := time.Now()
	clf, err := TrainClassifier(ctx, vecs, dim, rowRoute, len(rf.Routes), headTrainOptions(rf.Head))
	if err != nil {
		return nil, err
	}
	c.logger.Info("classifier head trained", "routes", len(rf.Routes), "utterances", len(rowRoute), "took", time.Since(start).Round(time.Millisecond))
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
			err = renameio.WriteFile(path, clf.MarshalBinary(key), 0o644)
		}
		if err != nil {
			c.logger.Warn("could not cache the classifier head", "err", err)
		}
	}
	return clf, nil
}

// cachePath gives each model its own cache file.
func (c *Client) cachePath(enc embed.Encoder) string {
	id := "unidentified"
	if i, ok := enc.(embed.Identifier); ok {
		sum := sha256.Sum256([]byte(i.ModelID()))
		id = hex.EncodeToString(sum[:8])
	}
	return filepath.Join(c.opts.CacheDir, "embeddings-"+id+".bin")
}

// decide embeds text and scores it; an embedding failure falls back to the
// default model, with the cause in the decision.
func (r *autoRouter) decide(ctx context.Context, text string, logger *slog.Logger) Decision {
	if text == "" {
		return r.fallback(ReasonEmptyText, text, nil)
	}
	vp := r.vecs.Get().(*[]float32)
	defer r.vecs.Put(vp)
	t0 := time.Now()
	if err := r.enc.Embed(ctx, []string{r.clipped(text)}, *vp); err != nil {
		if ctx.Err() == nil {
			logger.Warn("embedding failed; using the default model", "router", r.name, "err", err)
		}
		d := r.fallback(ReasonEmbedError, text, err)
		d.EmbedTime = time.Since(t0)
		return d
	}
	t1 := time.Now()
	d := r.decideVec(text, *vp)
	d.EmbedTime, d.ScoreTime = t1.Sub(t0), time.Since(t1)
	return d
}

// clipped is the part of text that is embedded: all of it, or its first
// (and last) tokens under router.json max_embed_tokens. A text of no more
// bytes than the bound has no more tokens, so it skips the tokenizer.
func (r *autoRouter) clipped(text string) string {
	if r.clip == nil || len(text) <= r.maxTokens {
		return text
	}
	return r.clip.Clip(text, r.maxTokens, r.headTail)
}

// nearest embeds text as decide does and returns its k nearest
// utterances.
func (r *autoRouter) nearest(ctx context.Context, text string, k int) ([]Neighbor, error) {
	vp := r.vecs.Get().(*[]float32)
	defer r.vecs.Put(vp)
	if err := r.enc.Embed(ctx, []string{r.clipped(text)}, *vp); err != nil {
		return nil, fmt.Errorf("embedding the text for its nearest utterances: %w", err)
	}
	rows, scores := r.index.NearestRows(*vp, k)
	out := make([]Neighbor, len(rows))
	for i, row := range rows {
		out[i] = Neighbor{Route: r.index.Routes()[r.index.RouteOf(row)].Name, Utterance: r.utterances[row], Score: scores[i]}
	}
	return out, nil
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

// Progress reports a router's utterance embedding while it loads.
type Progress struct {
	// Router is the auto router's model_name.
	Router string
	// Done of Total utterances that needed embedding are embedded.
	Done, Total int
	// PerSecond is the embedding rate so far.
	PerSecond float64
	// Err, when set, is the last report of a build that failed (Done and
	// Total are then zero).
	Err error
}

// ETA is the expected time left.
func (p Progress) ETA() time.Duration {
	if p.PerSecond <= 0 || p.Done >= p.Total {
		return 0
	}
	return time.Duration(float64(p.Total-p.Done) / p.PerSecond * float64(time.Second))
}
