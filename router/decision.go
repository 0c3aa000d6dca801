package router

import (
	"encoding/json"
	"time"
)

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
	// Cached is true when the decision came from the decision cache (the
	// same router saw the same text before); Session is true when it is
	// the session's kept decision (session affinity).
	Cached, Session bool
	// Nearest holds the utterances most similar to Text, highest first,
	// when they were asked for (Snapshot.Nearest; /route?nearest=k).
	Nearest []Neighbor
}

// Neighbor is one of a router's utterances near a routed text.
type Neighbor struct {
	Route     string  `json:"route"`
	Utterance string  `json:"utterance"`
	Score     float32 `json:"score"`
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

// decisionJSON is the wire form of a Decision, used by the CLI and the
// proxy's /route endpoint.
type decisionJSON struct {
	Text     string          `json:"text"`
	Router   string          `json:"router"`
	Model    string          `json:"model"`
	Route    *string         `json:"route"`
	Score    float32         `json:"score"`
	Fallback bool            `json:"fallback"`
	Reason   string          `json:"reason,omitempty"`
	Error    string          `json:"error,omitempty"`
	Scores   []routeScoreDTO `json:"scores"`
	EmbedMS  float64         `json:"embed_ms"`
	ScoreMS  float64         `json:"score_ms"`
	Cached   bool            `json:"cached"`
	Session  bool            `json:"session,omitempty"`
	Nearest  []Neighbor      `json:"nearest,omitempty"`
}

type routeScoreDTO struct {
	Route     string  `json:"route"`
	Score     float32 `json:"score"`
	Threshold float32 `json:"threshold"`
	Passed    bool    `json:"passed"`
}

// MarshalJSON encodes the decision with "route": null when it fell back.
func (d Decision) MarshalJSON() ([]byte, error) {
	j := decisionJSON{Text: d.Text, Router: d.Router, Model: d.Model, Score: d.Score, Fallback: d.Fallback,
		Reason: d.Reason, Scores: make([]routeScoreDTO, len(d.Scores)),
		EmbedMS: float64(d.EmbedTime.Microseconds()) / 1000, ScoreMS: float64(d.ScoreTime.Microseconds()) / 1000,
		Cached: d.Cached, Session: d.Session, Nearest: d.Nearest}
	if !d.Fallback {
		j.Route = &d.Route
	}
	if d.Err != nil {
		j.Error = d.Err.Error()
	}
	for i, s := range d.Scores {
		j.Scores[i] = routeScoreDTO(s)
	}
	return json.Marshal(j)
}
