package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
)

// RouterFile is LiteLLM's router.json: the routes of one auto router. The
// top-level keys after Routes are autorouter extensions; LiteLLM files
// without them behave exactly as in LiteLLM.
type RouterFile struct {
	EncoderType string      `json:"encoder_type"`
	EncoderName string      `json:"encoder_name"`
	Routes      []RouteSpec `json:"routes"`

	// Scoring is "similarity" (default: LiteLLM's nearest-utterance scoring)
	// or "classifier": a softmax head trained on the utterances, whose route
	// probabilities are the scores (and score_threshold a probability).
	Scoring string `json:"scoring,omitempty"`
	// Aggregation combines a route's utterances among the top k: "mean"
	// (default), "max" or "sum".
	Aggregation string `json:"aggregation,omitempty"`
	// TopK is how many utterances over all routes are kept per query. Default 5.
	TopK int `json:"top_k,omitempty"`
	// MaxTextChars cuts the embedded text. Default 2000 characters.
	MaxTextChars int `json:"max_text_chars,omitempty"`
	// ConversationWindow, when above 1, embeds the last N user turns joined,
	// so that a short follow-up stays on its conversation's route. Default 1
	// (only the last user message, as LiteLLM does).
	ConversationWindow int `json:"conversation_window,omitempty"`

	// Path is where the file was read from ("" for inline configs).
	Path string `json:"-"`
}

// RouteSpec is one route of a router.json.
type RouteSpec struct {
	// Name is the model_name requests matching this route are sent to.
	Name       string   `json:"name"`
	Utterances []string `json:"utterances"`
	// Description is informational.
	Description *string `json:"description,omitempty"`
	// FunctionSchemas and LLM are semantic-router features LiteLLM accepts
	// and does not use; they are kept so a rewrite preserves them.
	FunctionSchemas json.RawMessage `json:"function_schemas,omitempty"`
	LLM             json.RawMessage `json:"llm,omitempty"`
	// ScoreThreshold is the score a match must reach, in [0,1]; null means
	// the encoder's default (see DefaultThreshold).
	ScoreThreshold *float64        `json:"score_threshold"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
}

// ParseRouterFile decodes a router.json. name labels errors (a path, or the
// model_name of an inline config). Unknown keys are warned about, not
// rejected, as LiteLLM ignores them too.
func ParseRouterFile(name string, data []byte, logger *slog.Logger) (*RouterFile, error) {
	var rf RouterFile
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&rf); err != nil {
		return nil, fmt.Errorf("%s: %w", name, describeJSONError(data, err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: unexpected data after the top-level JSON object", name)
	}
	if logger != nil {
		warnUnknownJSON(name, data, logger)
	}
	ignored := false
	for _, r := range rf.Routes {
		if len(r.FunctionSchemas) > 0 || len(r.LLM) > 0 {
			ignored = true
		}
	}
	if ignored && logger != nil {
		logger.Warn("router.json: function_schemas and llm are accepted but ignored (LiteLLM ignores them too)", "file", name)
	}
	return &rf, nil
}

// describeJSONError adds line:column to a JSON syntax or type error.
func describeJSONError(data []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
		if te.Field != "" {
			err = fmt.Errorf("field %s: cannot use a JSON %s here, want %s", te.Field, te.Value, te.Type)
		}
	}
	if off < 0 {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	line, col := 1, 1
	for _, b := range data[:min(int(off), len(data))] {
		if b == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Errorf("invalid JSON at line %d, column %d: %w", line, col, err)
}

var knownTop = map[string]bool{"encoder_type": true, "encoder_name": true, "routes": true, "scoring": true,
	"aggregation": true, "top_k": true, "max_text_chars": true, "conversation_window": true}
var knownRoute = map[string]bool{"name": true, "utterances": true, "description": true, "function_schemas": true,
	"llm": true, "score_threshold": true, "metadata": true}

func warnUnknownJSON(name string, data []byte, logger *slog.Logger) {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return
	}
	for _, k := range slices.Sorted(maps.Keys(top)) {
		if !knownTop[k] {
			logger.Warn("router.json: unknown key ignored", "file", name, "key", k)
		}
	}
	var routes []map[string]json.RawMessage
	if json.Unmarshal(top["routes"], &routes) != nil {
		return
	}
	for i, r := range routes {
		for _, k := range slices.Sorted(maps.Keys(r)) {
			if !knownRoute[k] {
				logger.Warn("router.json: unknown key ignored", "file", name, "key", fmt.Sprintf("routes[%d].%s", i, k))
			}
		}
	}
}

// Scoring modes of a router.json.
const (
	// ScoringSimilarity is LiteLLM's nearest-utterance scoring, the default.
	ScoringSimilarity = "similarity"
	// ScoringClassifier scores routes with a trained softmax head.
	ScoringClassifier = "classifier"
)

// Validate checks the routes themselves; that route names exist as
// model_names is checked by Config.Validate, which knows the model list.
func (rf *RouterFile) Validate() error {
	switch rf.Scoring {
	case "", ScoringSimilarity:
	case ScoringClassifier:
		if len(rf.Routes) < 2 {
			return fmt.Errorf("scoring %q needs at least two routes", rf.Scoring)
		}
	default:
		return fmt.Errorf("scoring %q: want %q or %q", rf.Scoring, ScoringSimilarity, ScoringClassifier)
	}
	if _, err := ParseAggregation(rf.Aggregation); err != nil {
		return err
	}
	if rf.TopK < 0 || rf.MaxTextChars < 0 || rf.ConversationWindow < 0 {
		return fmt.Errorf("top_k, max_text_chars and conversation_window must not be negative")
	}
	if len(rf.Routes) == 0 {
		return fmt.Errorf("no routes: add at least one route with utterances")
	}
	seen := map[string]bool{}
	for i, r := range rf.Routes {
		if r.Name == "" {
			return fmt.Errorf("routes[%d]: name is empty; set it to a model_name from model_list", i)
		}
		if seen[r.Name] {
			return fmt.Errorf("route %q appears twice; merge its utterances into one route", r.Name)
		}
		seen[r.Name] = true
		if t := r.ScoreThreshold; t != nil && (*t < 0 || *t > 1) {
			return fmt.Errorf("route %q: score_threshold %g outside [0,1]", r.Name, *t)
		}
		n := 0
		for _, u := range r.Utterances {
			if strings.TrimSpace(u) != "" {
				n++
			}
		}
		if n == 0 {
			return fmt.Errorf("route %q: no utterances; add example prompts for this route", r.Name)
		}
	}
	return nil
}

// readRouterFile loads and parses router.json from disk.
func readRouterFile(path string, logger *slog.Logger) (*RouterFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading router config: %w", err)
	}
	rf, err := ParseRouterFile(path, data, logger)
	if err != nil {
		return nil, err
	}
	rf.Path = path
	return rf, nil
}
