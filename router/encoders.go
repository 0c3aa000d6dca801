package router

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/autorouter/autorouter/embed"
)

// encoderPool shares encoders by what they load, so that several routers
// (and reloads) on the same local model use one ONNX session.
type encoderPool struct {
	modelsDir string
	mu        sync.Mutex
	encs      map[string]embed.Encoder
}

// key identifies what an embedding deployment loads.
func (p *encoderPool) key(cfg *Config, d Deployment) (string, embed.ONNXOptions) {
	params := d.Params
	if params.Provider() == "local" {
		dir := params.ModelPath
		if dir == "" {
			dir = filepath.Join(p.modelsDir, params.UpstreamModel())
		} else if !filepath.IsAbs(dir) && cfg.Path != "" {
			dir = filepath.Join(filepath.Dir(cfg.Path), dir)
		}
		file := "model.onnx"
		if q, _ := d.ModelInfo["quantized"].(bool); q {
			file = "model_int8.onnx"
		}
		if f, _ := d.ModelInfo["model_file"].(string); f != "" {
			file = f
		}
		return "local:" + filepath.Join(dir, file), embed.ONNXOptions{ModelDir: dir, ModelFile: file}
	}
	return "openai:" + params.APIBase + "#" + params.UpstreamModel(), embed.ONNXOptions{}
}

// get returns the shared encoder for an embedding deployment.
func (p *encoderPool) get(ctx context.Context, cfg *Config, d Deployment) (embed.Encoder, error) {
	key, onnxOpts := p.key(cfg, d)
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.encs[key]; ok {
		return e, nil
	}
	var e embed.Encoder
	switch d.Params.Provider() {
	case "local":
		o, err := embed.NewONNX(onnxOpts)
		if err != nil {
			return nil, fmt.Errorf("embedding model %q: %w", d.ModelName, err)
		}
		e = o
		// micro_batch merges concurrent single-prompt embeddings into shared
		// ONNX runs (1.1x to 1.4x the throughput at 32 concurrent callers on
		// 2 cores, in bench/ and embed's BenchmarkBatcher).
		// Opt-in: with the int8 model a vector then depends very slightly on
		// what it was batched with.
		if on, _ := d.ModelInfo["micro_batch"].(bool); on {
			maxBatch, _ := d.ModelInfo["max_batch"].(int)
			var window time.Duration
			if w, ok := d.ModelInfo["batch_window"].(string); ok {
				pd, err := ParseDuration(w)
				if err != nil {
					return nil, fmt.Errorf("embedding model %q: model_info.batch_window: %w", d.ModelName, err)
				}
				window = pd.D()
			}
			e = embed.NewBatcher(o, embed.BatchOptions{MaxBatch: maxBatch, Window: window})
		}
	case "openai":
		base := d.Params.APIBase
		if base == "" {
			base = "https://api.openai.com/v1"
		}
		o, err := embed.NewOpenAI(embed.OpenAIOptions{BaseURL: base, APIKey: d.Params.APIKey.Value(),
			Model: d.Params.UpstreamModel(), Timeout: d.Params.Timeout.D()})
		if err != nil {
			return nil, fmt.Errorf("embedding model %q: %w", d.ModelName, err)
		}
		if err := o.Probe(ctx); err != nil {
			return nil, fmt.Errorf("embedding model %q: %w", d.ModelName, err)
		}
		e = o
	default:
		return nil, fmt.Errorf("embedding model %q: provider %q cannot embed; use local/<model> or openai/<model>", d.ModelName, d.Params.Provider())
	}
	if p.encs == nil {
		p.encs = map[string]embed.Encoder{}
	}
	p.encs[key] = e
	return e, nil
}

func (p *encoderPool) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var first error
	for k, e := range p.encs {
		if c, ok := e.(io.Closer); ok {
			if err := c.Close(); err != nil && first == nil {
				first = err
			}
		}
		delete(p.encs, k)
	}
	return first
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
	case provider == "local":
		return DefaultLocalThreshold
	case strings.HasPrefix(model, "text-embedding-3"):
		return 0.3
	default:
		return 0.82
	}
}
