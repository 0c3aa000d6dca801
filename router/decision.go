package router

import "time"

// Decision is the outcome of routing one request through an auto router.
type Decision struct {
	// Router is the auto router's model_name.
	Router string
	// Model is the model_name the request goes to: the winning route's name,
	// or the router's default model when Fallback is true.
	Model string
	// Route is the winning route's name; empty when Fallback is true.
	Route string
	// Score is the winning route's aggregated score (similarity mode: cosine;
	// classifier mode: probability). Zero when no route won.
	Score float32
	// Scores holds every candidate route's aggregated score, highest first.
	Scores []RouteScore
	// Fallback is true when the default model was chosen.
	Fallback bool
	// Reason says why the request fell back: one of the Reason* constants.
	Reason string
	// Err is the embedding error that caused a fallback, if any. Routing never
	// fails a request; the error is recorded here and logged.
	Err error
	// Text is the text that was embedded (after extraction and truncation).
	Text string
	// EmbedTime and ScoreTime split the decision latency.
	EmbedTime, ScoreTime time.Duration
}

// RouteScore is one candidate route's aggregated score against its threshold.
type RouteScore struct {
	Route     string
	Score     float32
	Threshold float32
	Passed    bool
}

// Reasons a Decision falls back to the default model.
const (
	ReasonNone           = ""
	ReasonNoUserMessage  = "no_user_message"
	ReasonEmptyText      = "empty_text"
	ReasonBelowThreshold = "below_threshold"
	ReasonEmbedError     = "embed_error"
)
