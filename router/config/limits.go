package config

import (
	"fmt"
	"runtime"
	"time"
)

// Limits bound everything a client, an upstream or a config can make the
// process hold or spend. They live in general_settings; zero means the
// default given with each field. Connection and timeout limits apply when
// the server starts; the rest apply to each config generation.
type Limits struct {
	// MaxRequestSizeMB bounds request bodies (LiteLLM's name); larger ones
	// get 413. Default 10.
	MaxRequestSizeMB float64 `yaml:"max_request_size_mb" json:"max_request_size_mb,omitempty"`
	// MaxResponseSizeMB bounds a non-streaming upstream answer (LiteLLM's
	// name); a larger one is cut off and the client gets 502. Default 64.
	MaxResponseSizeMB float64 `yaml:"max_response_size_mb" json:"max_response_size_mb,omitempty"`

	// HeaderTimeout is how long a client may take to send a request's
	// headers, and how long a new connection may stay silent. Default 10 s.
	HeaderTimeout Duration `yaml:"header_timeout" json:"header_timeout,omitempty"`
	// BodyTimeout is how long a client may take to send a request body once
	// its headers are in. Default 60 s.
	BodyTimeout Duration `yaml:"body_timeout" json:"body_timeout,omitempty"`
	// IdleTimeout closes keep-alive connections idle this long. Default 30 s.
	IdleTimeout Duration `yaml:"idle_timeout" json:"idle_timeout,omitempty"`
	// WriteTimeout is how long one write to a client may block (a client
	// that stopped reading); a stream's total length is not bounded.
	// Default 30 s.
	WriteTimeout Duration `yaml:"write_timeout" json:"write_timeout,omitempty"`
	// MaxConnections bounds open client connections; past it the longest
	// idle connection is closed to admit a new one, or the new one gets 503
	// when none is idle. Default: half the open-file limit, at most 16384.
	MaxConnections int `yaml:"max_connections" json:"max_connections,omitempty"`
	// MaxConnectionsPerIP bounds open connections from one client address
	// (429 past it). Default 0: no per-address limit, which suits a proxy
	// behind a load balancer.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip" json:"max_connections_per_ip,omitempty"`
	// MaxHeaderBytes bounds a request's header block; larger ones get 431.
	// Default 16384.
	MaxHeaderBytes int `yaml:"max_header_bytes" json:"max_header_bytes,omitempty"`

	// MaxEmbeddingInputs bounds the inputs of one /v1/embeddings request
	// (OpenAI allows 2048). Default 2048.
	MaxEmbeddingInputs int `yaml:"max_embedding_inputs" json:"max_embedding_inputs,omitempty"`
	// MaxEmbeddingTokens bounds the tokens one /v1/embeddings request may
	// make a local model run, after each input is cut to the model's
	// length. Default 65536.
	MaxEmbeddingTokens int `yaml:"max_embedding_tokens" json:"max_embedding_tokens,omitempty"`
	// MaxConcurrentEmbeddings bounds /v1/embeddings requests running on
	// local models at once. Default: the number of CPUs.
	MaxConcurrentEmbeddings int `yaml:"max_concurrent_embeddings" json:"max_concurrent_embeddings,omitempty"`
	// MaxQueuedEmbeddings bounds the /v1/embeddings requests waiting for a
	// slot; past it requests get 429 with Retry-After. Default 64.
	MaxQueuedEmbeddings int `yaml:"max_queued_embeddings" json:"max_queued_embeddings,omitempty"`
	// MaxSSEEventBytes bounds one server-sent event (or line) of an upstream
	// stream; a larger one ends the stream with an error event. Default 4 MiB.
	MaxSSEEventBytes int `yaml:"max_sse_event_bytes" json:"max_sse_event_bytes,omitempty"`

	// MaxConcurrentRouting bounds routing embeddings running at once on an
	// encoder without micro-batching (waiting requests queue). Default: the
	// number of CPUs.
	MaxConcurrentRouting int `yaml:"max_concurrent_routing" json:"max_concurrent_routing,omitempty"`
	// LongPromptChars is the routing text length, in bytes, from which an
	// embedding counts as long: long ones may hold all but one CPU at once,
	// so a burst of them never starves short prompts. Default 1024.
	LongPromptChars int `yaml:"long_prompt_chars" json:"long_prompt_chars,omitempty"`

	// MaxRouterUtterances bounds the utterances of one auto router.
	// Default 100000.
	MaxRouterUtterances int `yaml:"max_router_utterances" json:"max_router_utterances,omitempty"`
	// MaxRouterFileBytes bounds a router.json file. Default 64 MiB.
	MaxRouterFileBytes int64 `yaml:"max_router_file_bytes" json:"max_router_file_bytes,omitempty"`
	// MaxUtteranceChars bounds one utterance, in bytes. Default 8192.
	MaxUtteranceChars int `yaml:"max_utterance_chars" json:"max_utterance_chars,omitempty"`
}

// Default limits; see the fields of Limits.
const (
	DefaultMaxRequestSizeMB     = 10
	DefaultMaxResponseSizeMB    = 64
	DefaultHeaderTimeout        = 10 * time.Second
	DefaultBodyTimeout          = 60 * time.Second
	DefaultIdleTimeout          = 30 * time.Second
	DefaultWriteTimeout         = 30 * time.Second
	DefaultMaxConnections       = 16384
	DefaultMaxHeaderBytes       = 16 << 10
	DefaultMaxEmbeddingInputs   = 2048
	DefaultMaxEmbeddingTokens   = 65536
	DefaultMaxQueuedEmbeddings  = 64
	DefaultMaxSSEEventBytes     = 4 << 20
	DefaultMaxRouterUtterances  = 100_000
	DefaultLongPromptChars      = 1024
	DefaultMaxRouterFileBytes   = 64 << 20
	DefaultMaxUtteranceChars    = 8192
	maxConfiguredLimitMB        = 1 << 14
	maxConfiguredHeaderBytes    = 1 << 20
	maxConfiguredEmbeddingInput = 1 << 20
)

// orZero sets *p to v when *p is zero.
func orZero[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// WithDefaults returns l with every zero field set to its default.
// MaxConnections' default needs the open-file limit, which the caller
// supplies (0 when unknown).
func (l Limits) WithDefaults(openFiles int) Limits {
	orZero(&l.MaxRequestSizeMB, DefaultMaxRequestSizeMB)
	orZero(&l.MaxResponseSizeMB, DefaultMaxResponseSizeMB)
	orZero(&l.HeaderTimeout, Duration(DefaultHeaderTimeout))
	orZero(&l.BodyTimeout, Duration(DefaultBodyTimeout))
	orZero(&l.IdleTimeout, Duration(DefaultIdleTimeout))
	orZero(&l.WriteTimeout, Duration(DefaultWriteTimeout))
	if l.MaxConnections == 0 {
		l.MaxConnections = DefaultMaxConnections
		// Half the descriptors for clients leaves the rest for upstream
		// connections, the model and the database.
		if openFiles > 0 {
			l.MaxConnections = max(16, min(l.MaxConnections, openFiles/2))
		}
	}
	orZero(&l.MaxHeaderBytes, DefaultMaxHeaderBytes)
	orZero(&l.MaxEmbeddingInputs, DefaultMaxEmbeddingInputs)
	orZero(&l.MaxEmbeddingTokens, DefaultMaxEmbeddingTokens)
	orZero(&l.MaxConcurrentEmbeddings, runtime.GOMAXPROCS(0))
	orZero(&l.MaxQueuedEmbeddings, DefaultMaxQueuedEmbeddings)
	orZero(&l.MaxSSEEventBytes, DefaultMaxSSEEventBytes)
	orZero(&l.MaxConcurrentRouting, runtime.GOMAXPROCS(0))
	orZero(&l.LongPromptChars, DefaultLongPromptChars)
	orZero(&l.MaxRouterUtterances, DefaultMaxRouterUtterances)
	orZero(&l.MaxRouterFileBytes, DefaultMaxRouterFileBytes)
	orZero(&l.MaxUtteranceChars, DefaultMaxUtteranceChars)
	return l
}

// RequestBytes is MaxRequestSizeMB in bytes.
func (l Limits) RequestBytes() int { return mb(l.MaxRequestSizeMB, DefaultMaxRequestSizeMB) }

// ResponseBytes is MaxResponseSizeMB in bytes.
func (l Limits) ResponseBytes() int { return mb(l.MaxResponseSizeMB, DefaultMaxResponseSizeMB) }

func mb(v, def float64) int {
	if v <= 0 {
		v = def
	}
	return int(v * (1 << 20))
}

func (l Limits) maxUtterances() int {
	if l.MaxRouterUtterances > 0 {
		return l.MaxRouterUtterances
	}
	return DefaultMaxRouterUtterances
}

func (l Limits) maxRouterFileBytes() int64 {
	if l.MaxRouterFileBytes > 0 {
		return l.MaxRouterFileBytes
	}
	return DefaultMaxRouterFileBytes
}

func (l Limits) maxUtteranceChars() int {
	if l.MaxUtteranceChars > 0 {
		return l.MaxUtteranceChars
	}
	return DefaultMaxUtteranceChars
}

// Validate rejects negative and absurd limits, naming the key.
func (l Limits) Validate() error {
	for _, c := range []struct {
		key string
		v   float64
		max float64
	}{
		{"max_request_size_mb", l.MaxRequestSizeMB, maxConfiguredLimitMB},
		{"max_response_size_mb", l.MaxResponseSizeMB, maxConfiguredLimitMB},
		{"max_connections", float64(l.MaxConnections), 1 << 24},
		{"max_connections_per_ip", float64(l.MaxConnectionsPerIP), 1 << 24},
		{"max_header_bytes", float64(l.MaxHeaderBytes), maxConfiguredHeaderBytes},
		{"max_embedding_inputs", float64(l.MaxEmbeddingInputs), maxConfiguredEmbeddingInput},
		{"max_embedding_tokens", float64(l.MaxEmbeddingTokens), 1 << 30},
		{"max_concurrent_embeddings", float64(l.MaxConcurrentEmbeddings), 1 << 16},
		{"max_queued_embeddings", float64(l.MaxQueuedEmbeddings), 1 << 20},
		{"max_sse_event_bytes", float64(l.MaxSSEEventBytes), 1 << 30},
		{"max_router_utterances", float64(l.MaxRouterUtterances), 1 << 26},
		{"max_router_file_bytes", float64(l.MaxRouterFileBytes), 1 << 34},
		{"max_utterance_chars", float64(l.MaxUtteranceChars), 1 << 24},
		{"max_concurrent_routing", float64(l.MaxConcurrentRouting), 1 << 16},
		{"long_prompt_chars", float64(l.LongPromptChars), 1 << 30},
	} {
		if !(c.v >= 0) || c.v > c.max {
			return fmt.Errorf("general_settings.%s %g: want 0 (the default) or a positive number up to %g", c.key, c.v, c.max)
		}
	}
	if l.MaxHeaderBytes != 0 && l.MaxHeaderBytes < 1024 {
		return fmt.Errorf("general_settings.max_header_bytes %d: want at least 1024", l.MaxHeaderBytes)
	}
	return nil
}
