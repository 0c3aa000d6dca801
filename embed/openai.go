package embed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// OpenAIOptions configures a remote encoder for encoder_type "openai": any
// server speaking OpenAI's POST /embeddings (OpenAI, vLLM, Ollama, another
// autorouter).
type OpenAIOptions struct {
	// BaseURL is the API root, e.g. https://api.openai.com/v1; requests go
	// to BaseURL + "/embeddings".
	BaseURL string
	// APIKey is sent as a bearer token; empty sends none.
	APIKey string
	// Model is the embedding model name, e.g. text-embedding-3-small.
	Model string
	// Dim is the vector length. Zero means the known size of OpenAI's models,
	// or for other models whatever Probe learns.
	Dim int
	// BatchSize is the most inputs per request. Default 256.
	BatchSize int
	// Timeout bounds one attempt. Default 30s.
	Timeout time.Duration
	// MaxRetries is how often 429, 5xx and connection errors are retried,
	// with exponential backoff and jitter. Default 3.
	MaxRetries int
	// Client is the HTTP client. Default: a new client with keep-alive.
	Client *http.Client
}

// OpenAI is a remote encoder. It is safe for concurrent use.
type OpenAI struct {
	opts    OpenAIOptions
	dim     atomic.Int64
	backoff time.Duration
	// where is BaseURL as errors show it: without a password or query,
	// where a key may sit.
	where string
}

var _ Encoder = (*OpenAI)(nil)
var _ Identifier = (*OpenAI)(nil)

// knownDims are OpenAI's embedding sizes.
var knownDims = map[string]int{"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}

// NewOpenAI returns a remote encoder.
func NewOpenAI(opts OpenAIOptions) (*OpenAI, error) {
	if opts.BaseURL == "" {
		return nil, errors.New("openai encoder: api_base is empty; set it to the API root, e.g. https://api.openai.com/v1")
	}
	if !strings.HasPrefix(opts.BaseURL, "http://") && !strings.HasPrefix(opts.BaseURL, "https://") {
		return nil, errors.New("openai encoder: api_base must start with http:// or https://")
	}
	if opts.Model == "" {
		return nil, errors.New("openai encoder: no model name")
	}
	opts.BaseURL = strings.TrimRight(opts.BaseURL, "/")
	if opts.BatchSize <= 0 {
		opts.BatchSize = 256
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.MaxRetries < 0 {
		opts.MaxRetries = 0
	} else if opts.MaxRetries == 0 {
		opts.MaxRetries = 3
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	e := &OpenAI{opts: opts, backoff: 200 * time.Millisecond, where: "the configured api_base"}
	if u, err := url.Parse(opts.BaseURL); err == nil {
		u.RawQuery, u.Fragment = "", ""
		e.where = u.Redacted()
	}
	dim := opts.Dim
	if dim == 0 {
		dim = knownDims[opts.Model]
	}
	e.dim.Store(int64(dim))
	return e, nil
}

// Dim is the vector length; 0 until Probe has learned it for an unknown model.
func (e *OpenAI) Dim() int { return int(e.dim.Load()) }

// ModelID identifies the endpoint and model, for caches.
func (e *OpenAI) ModelID() string { return "openai:" + e.opts.BaseURL + "#" + e.opts.Model }

// Probe learns Dim with one small request when it is not known yet.
func (e *OpenAI) Probe(ctx context.Context) error {
	if e.Dim() > 0 {
		return nil
	}
	vecs, err := e.request(ctx, []string{"dimension probe"})
	if err != nil {
		return fmt.Errorf("probing embedding size: %w", err)
	}
	e.dim.Store(int64(len(vecs[0])))
	return nil
}

// Embed writes one unit vector per text into dst.
func (e *OpenAI) Embed(ctx context.Context, texts []string, dst []float32) error {
	dim := e.Dim()
	if dim == 0 {
		return fmt.Errorf("openai encoder %s: embedding size unknown; call Probe first or set its dimension", e.opts.Model)
	}
	if len(dst) != len(texts)*dim {
		return fmt.Errorf("openai encoder: dst has %d floats, want %d", len(dst), len(texts)*dim)
	}
	for start := 0; start < len(texts); start += e.opts.BatchSize {
		batch := texts[start:min(start+e.opts.BatchSize, len(texts))]
		vecs, err := e.request(ctx, batch)
		if err != nil {
			return err
		}
		for i, v := range vecs {
			if len(v) != dim {
				return fmt.Errorf("openai encoder %s: got a %d-dimensional vector, want %d", e.opts.Model, len(v), dim)
			}
			normalizeInto(dst[(start+i)*dim:(start+i+1)*dim], v)
		}
	}
	return nil
}

// statusError is a non-2xx answer from the embeddings endpoint.
type statusError struct {
	status int
	msg    string
	retry  time.Duration
}

func (e *statusError) Error() string {
	return fmt.Sprintf("embeddings endpoint answered %d: %s", e.status, e.msg)
}

// request embeds one batch, retrying what is worth retrying.
func (e *OpenAI) request(ctx context.Context, texts []string) ([][]float32, error) {
	body, err := json.Marshal(map[string]any{"model": e.opts.Model, "input": texts, "encoding_format": "float"})
	if err != nil {
		return nil, fmt.Errorf("openai encoder: encoding request: %w", err)
	}
	var last error
	for attempt := 0; attempt <= e.opts.MaxRetries; attempt++ {
		if attempt > 0 {
			wait := e.backoff << (attempt - 1)
			wait += time.Duration(rand.Int64N(int64(wait)/2 + 1))
			var se *statusError
			if errors.As(last, &se) && se.retry > 0 {
				wait = se.retry
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(wait):
			}
		}
		vecs, err := e.once(ctx, body, len(texts))
		if err == nil {
			return vecs, nil
		}
		last = err
		var se *statusError
		if ctx.Err() != nil || (errors.As(err, &se) && se.status != 429 && se.status < 500) {
			break
		}
	}
	return nil, fmt.Errorf("openai encoder %s at %s: %w", e.opts.Model, e.where, last)
}

func (e *OpenAI) once(ctx context.Context, body []byte, n int) ([][]float32, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", e.opts.BaseURL+"/embeddings", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if e.opts.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+e.opts.APIKey)
	}
	resp, err := e.opts.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("reading response: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var env struct {
			Error struct{ Message string } `json:"error"`
		}
		msg := strings.TrimSpace(string(raw))
		if json.Unmarshal(raw, &env) == nil && env.Error.Message != "" {
			msg = env.Error.Message
		}
		if len(msg) > 300 {
			msg = msg[:300]
		}
		se := &statusError{status: resp.StatusCode, msg: msg}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 && s < 60 {
			se.retry = time.Duration(s) * time.Second
		}
		return nil, se
	}
	var out struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("invalid response JSON: %w", err)
	}
	if len(out.Data) != n {
		return nil, fmt.Errorf("response has %d embeddings for %d inputs", len(out.Data), n)
	}
	vecs := make([][]float32, n)
	for _, d := range out.Data {
		if d.Index < 0 || d.Index >= n || vecs[d.Index] != nil || len(d.Embedding) == 0 {
			return nil, fmt.Errorf("response has an invalid or repeated index %d", d.Index)
		}
		vecs[d.Index] = d.Embedding
	}
	return vecs, nil
}
