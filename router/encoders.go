package router

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"

	"github.com/autorouter/autorouter/embed"
	"github.com/autorouter/autorouter/router/config"
)

// encoderPool shares encoders between the generations of a config by what
// they load: several routers (and reloads) on the same local model use one
// ONNX session. Each generation holds a reference to the encoders it uses;
// an encoder is closed when the last generation holding it is gone. Any
// option that changes an encoder is part of its key, so that a reload with
// a changed option builds a new one instead of silently keeping the old.
type encoderPool struct {
	modelsDir  string
	modelsFrom string // how modelsDir was chosen, for errors
	runtimeLib string
	mu         sync.Mutex
	byKey      map[string]*encoderRef
}

// encoderRef is a shared encoder and the generations holding it.
type encoderRef struct {
	key  string
	enc  embed.Encoder
	refs int
}

// encoderKey identifies what an embedding deployment loads, and how.
func (p *encoderPool) encoderKey(d *config.Deployment) string {
	params, info := d.Params, d.ModelInfo
	var b strings.Builder
	switch params.Provider() {
	case config.ProviderLocal:
		dir, file := p.localModel(d)
		fmt.Fprintf(&b, "local\x00%s\x00%s\x00%v\x00%d\x00%d", dir, file, info.MicroBatch, info.MaxBatch, info.BatchWindow)
	default:
		sum := sha256.Sum256([]byte(params.APIKey.Value()))
		fmt.Fprintf(&b, "openai\x00%s\x00%s\x00%s\x00%d", params.APIBase, params.UpstreamModel(), hex.EncodeToString(sum[:8]), params.Timeout)
	}
	return b.String()
}

// localModel is the directory and graph file of a local deployment.
func (p *encoderPool) localModel(d *config.Deployment) (dir, file string) {
	dir = d.Params.ModelPath
	if dir == "" {
		dir = filepath.Join(p.modelsDir, d.Params.UpstreamModel())
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	file = "model.onnx"
	if d.ModelInfo.Quantized {
		file = "model_int8.onnx"
	}
	if d.ModelInfo.ModelFile != "" {
		file = d.ModelInfo.ModelFile
	}
	return dir, file
}

// acquire returns a reference to the encoder of an embedding deployment,
// building it on first use. Release it with release.
func (p *encoderPool) acquire(ctx context.Context, d *config.Deployment) (*encoderRef, error) {
	key := p.encoderKey(d)
	p.mu.Lock()
	if r, ok := p.byKey[key]; ok {
		r.refs++
		p.mu.Unlock()
		return r, nil
	}
	p.mu.Unlock()
	// Build outside the lock: an OpenAI encoder probes its endpoint.
	enc, err := p.build(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("embedding model %q: %w", d.ModelName, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.byKey[key]; ok {
		// Another generation built it meanwhile; keep that one.
		closeEncoder(enc)
		r.refs++
		return r, nil
	}
	if p.byKey == nil {
		p.byKey = map[string]*encoderRef{}
	}
	r := &encoderRef{key: key, enc: enc, refs: 1}
	p.byKey[key] = r
	return r, nil
}

func (p *encoderPool) build(ctx context.Context, d *config.Deployment) (embed.Encoder, error) {
	params, info := d.Params, d.ModelInfo
	switch params.Provider() {
	case config.ProviderLocal:
		dir, file := p.localModel(d)
		o, err := embed.NewONNX(embed.ONNXOptions{ModelDir: dir, ModelFile: file, RuntimeLib: p.runtimeLib})
		if err != nil {
			if params.ModelPath == "" {
				return nil, fmt.Errorf("%w (models directory %s, %s)", err, p.modelsDir, p.modelsFrom)
			}
			return nil, err
		}
		// micro_batch merges concurrent single-prompt embeddings into shared
		// ONNX runs (1.1x to 1.4x the throughput at 32 concurrent callers on
		// 2 cores, in bench/ and embed's BenchmarkBatcher). Opt-in: with the
		// int8 model a vector then depends very slightly on what it was
		// batched with.
		if info.MicroBatch {
			return embed.NewBatcher(o, embed.BatchOptions{MaxBatch: info.MaxBatch, Window: info.BatchWindow.D()}), nil
		}
		return o, nil
	case config.ProviderOpenAI:
		base := params.APIBase
		if base == "" {
			base = "https://api.openai.com/v1"
		}
		o, err := embed.NewOpenAI(embed.OpenAIOptions{BaseURL: base, APIKey: params.APIKey.Value(),
			Model: params.UpstreamModel(), Timeout: params.Timeout.D()})
		if err != nil {
			return nil, err
		}
		if err := o.Probe(ctx); err != nil {
			return nil, err
		}
		return o, nil
	}
	return nil, fmt.Errorf("provider %q cannot embed; use local/<model> or openai/<model>", params.Provider())
}

// release drops a reference, closing the encoder with the last one.
func (p *encoderPool) release(r *encoderRef) {
	p.mu.Lock()
	r.refs--
	last := r.refs == 0
	if last {
		delete(p.byKey, r.key)
	}
	p.mu.Unlock()
	if last {
		closeEncoder(r.enc)
	}
}

// open counts the encoders alive, for tests.
func (p *encoderPool) open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.byKey)
}

func closeEncoder(e embed.Encoder) {
	if c, ok := e.(io.Closer); ok {
		_ = c.Close()
	}
}

// DefaultLocalThreshold is the score_threshold of routes whose threshold is
// null when the encoder is a local model. 0.5 is where all-MiniLM-L6-v2 on
// CLINC150 keeps ~84% in-scope accuracy while sending ~70% of out-of-scope
// prompts to the default model.
const DefaultLocalThreshold = 0.5

// DefaultClassifierThreshold is the probability a route needs in classifier
// scoring when its score_threshold is null.
const DefaultClassifierThreshold = 0.5

// DefaultThreshold is semantic-router's default score_threshold for an
// encoder: 0.3 for OpenAI's text-embedding-3 models, 0.82 for ada-002 and
// other OpenAI models, DefaultLocalThreshold for local models.
func DefaultThreshold(provider, model string) float32 {
	switch {
	case provider == config.ProviderLocal:
		return DefaultLocalThreshold
	case strings.HasPrefix(model, "text-embedding-3"):
		return 0.3
	default:
		return 0.82
	}
}
