package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// RouterFile is LiteLLM's router.json: the routes of one auto router. The
// top-level keys after Routes are autorouter extensions; LiteLLM files
// without them behave exactly as in LiteLLM.
type RouterFile struct {
	EncoderType string      `json:"encoder_type,omitempty"`
	EncoderName string      `json:"encoder_name,omitempty"`
	Routes      []RouteSpec `json:"routes"`

	// Scoring is "similarity" (default: LiteLLM's nearest-utterance scoring)
	// or "classifier": a softmax head trained on the utterances, whose route
	// probabilities are the scores (and score_threshold a probability).
	Scoring string `json:"scoring,omitempty"`
	// Head is the classifier of "scoring": "classifier": "linear" (the
	// default), "mlp" (one hidden layer), or either + "+similarity", which
	// blends each route's probability with the query's cosine to the
	// route's nearest utterance (see router.Classifier.WithSimilarity).
	Head string `json:"head,omitempty"`
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
	// MaxEmbedTokens, when set, embeds only the first N tokens of a long
	// routing text, or its first and last N/2 with LongText "head_tail".
	// Off by default, so LiteLLM's semantics stay exact (the model's own
	// limit, 256 tokens for all-MiniLM-L6-v2, still applies).
	MaxEmbedTokens int    `json:"max_embed_tokens,omitempty"`
	LongText       string `json:"long_text,omitempty"`

	// Path is where the file was read from ("" for inline configs).
	Path string `json:"-"`
	// unknown lists keys that were ignored when the JSON was parsed; Prepare
	// logs them with the router's name.
	unknown []string
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

// Scoring modes of a router.json.
const (
	// ScoringSimilarity is LiteLLM's nearest-utterance scoring, the default.
	ScoringSimilarity = "similarity"
	// ScoringClassifier scores routes with a trained softmax head.
	ScoringClassifier = "classifier"
)

// Heads of "scoring": "classifier" (router.json "head").
var Heads = []string{"linear", "mlp", "linear+similarity", "mlp+similarity"}

// How a text longer than max_embed_tokens is cut.
const (
	LongTextHead     = "head"
	LongTextHeadTail = "head_tail"
)

// Aggregations of a router.json.
var Aggregations = []string{"mean", "max", "sum"}

// ParseRouter decodes router.json text. name labels errors (a path, or
// "auto router "x": auto_router_config"). Unknown keys are kept in the
// result for Prepare to warn about, not rejected, as LiteLLM ignores them too.
func ParseRouter(name string, data []byte) (*RouterFile, error) {
	type plain RouterFile
	var rf plain
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&rf); err != nil {
		return nil, fmt.Errorf("%s: %w", name, describeJSONError(data, err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: unexpected data after the top-level JSON object", name)
	}
	out := RouterFile(rf)
	out.unknown = unknownJSONKeys(data)
	return &out, nil
}

// UnmarshalJSON accepts the routes as a JSON object or as a string holding
// one (LiteLLM's UI sends JSON.stringify of the object).
func (rf *RouterFile) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		b = []byte(s)
	}
	parsed, err := ParseRouter("auto_router_config", b)
	if err != nil {
		return err
	}
	*rf = *parsed
	return nil
}

// UnmarshalYAML accepts the routes as a JSON string (LiteLLM's form) or as
// a YAML mapping.
func (rf *RouterFile) UnmarshalYAML(n *yaml.Node) error {
	var data []byte
	switch n.Kind {
	case yaml.ScalarNode:
		data = []byte(n.Value)
	case yaml.MappingNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("line %d: auto_router_config: %w", n.Line, err)
		}
		data = b
	default:
		return fmt.Errorf("line %d: auto_router_config: want a JSON string or a mapping with routes", n.Line)
	}
	parsed, err := ParseRouter(fmt.Sprintf("auto_router_config (line %d)", n.Line), data)
	if err != nil {
		return err
	}
	*rf = *parsed
	return nil
}

// MarshalJSON writes auto_router_config as a JSON string, as LiteLLM stores
// and returns it, and Other's keys beside the typed ones.
func (p LiteLLMParams) MarshalJSON() ([]byte, error) {
	type plain LiteLLMParams
	out := struct {
		plain
		AutoRouterConfig *string `json:"auto_router_config,omitempty"`
	}{plain: plain(p)}
	if p.AutoRouterConfig != nil {
		b, err := json.Marshal(p.AutoRouterConfig)
		if err != nil {
			return nil, err
		}
		s := string(b)
		out.AutoRouterConfig = &s
	}
	b, err := json.Marshal(out)
	if err != nil || len(p.Other) == 0 {
		return b, err
	}
	var all map[string]any
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	for k, v := range p.Other {
		if _, ok := all[k]; !ok {
			all[k] = v
		}
	}
	return json.Marshal(all)
}

// UnmarshalJSON decodes the typed fields strictly (a wrong type is an
// error naming the key) and keeps the other keys in Other.
func (p *LiteLLMParams) UnmarshalJSON(b []byte) error {
	type plain LiteLLMParams
	var v plain
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("litellm_params: %w", jsonFieldError(err))
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return fmt.Errorf("litellm_params: %w", err)
	}
	known := jsonKeys(plain{})
	for k, raw := range all {
		if known[k] {
			continue
		}
		var x any
		if err := json.Unmarshal(raw, &x); err != nil {
			return fmt.Errorf("litellm_params.%s: %w", k, err)
		}
		if x == nil {
			continue // LiteLLM's UI sends unset fields as null
		}
		if v.Other == nil {
			v.Other = map[string]any{}
		}
		v.Other[k] = x
	}
	*p = LiteLLMParams(v)
	return nil
}

// Clone returns a deep copy, so that a change to the copy's routes or
// utterances never reaches a router built from the original.
func (rf *RouterFile) Clone() *RouterFile {
	if rf == nil {
		return nil
	}
	out := *rf
	out.unknown = slices.Clone(rf.unknown)
	out.Routes = make([]RouteSpec, len(rf.Routes))
	for i, r := range rf.Routes {
		r.Utterances = slices.Clone(r.Utterances)
		if r.ScoreThreshold != nil {
			t := *r.ScoreThreshold
			r.ScoreThreshold = &t
		}
		if r.Description != nil {
			d := *r.Description
			r.Description = &d
		}
		out.Routes[i] = r
	}
	return &out
}

// Utterances counts the utterances of every route.
func (rf *RouterFile) Utterances() int {
	n := 0
	for _, r := range rf.Routes {
		n += len(r.Utterances)
	}
	return n
}

// Validate checks the routes themselves; that route names exist as
// model_names is checked by Config.Validate, which knows the model list.
// lim bounds the size of the route set.
func (rf *RouterFile) Validate(lim Limits) error {
	switch rf.Scoring {
	case "", ScoringSimilarity:
	case ScoringClassifier:
		if len(rf.Routes) < 2 {
			return fmt.Errorf("scoring %q needs at least two routes", rf.Scoring)
		}
	default:
		return fmt.Errorf("scoring %q: want %q or %q", rf.Scoring, ScoringSimilarity, ScoringClassifier)
	}
	if rf.Head != "" && !slices.Contains(Heads, rf.Head) {
		return fmt.Errorf("head %q: want one of %q", rf.Head, Heads)
	}
	if rf.Head != "" && rf.Scoring != ScoringClassifier {
		return fmt.Errorf("head %q needs \"scoring\": %q", rf.Head, ScoringClassifier)
	}
	if rf.Aggregation != "" && !slices.Contains(Aggregations, rf.Aggregation) {
		return fmt.Errorf("aggregation %q: want \"mean\", \"max\" or \"sum\"", rf.Aggregation)
	}
	if rf.TopK < 0 || rf.MaxTextChars < 0 || rf.ConversationWindow < 0 || rf.MaxEmbedTokens < 0 {
		return errors.New("top_k, max_text_chars, conversation_window and max_embed_tokens must not be negative")
	}
	if rf.MaxEmbedTokens == 1 || rf.MaxEmbedTokens == 2 {
		return errors.New("max_embed_tokens: want 3 or more (it counts [CLS] and [SEP]), or 0 for no bound")
	}
	switch rf.LongText {
	case "", LongTextHead, LongTextHeadTail:
	default:
		return fmt.Errorf("long_text %q: want %q (the first max_embed_tokens tokens) or %q (the first and last halves)", rf.LongText, LongTextHead, LongTextHeadTail)
	}
	if len(rf.Routes) == 0 {
		return errors.New("no routes: add at least one route with utterances")
	}
	if n, max := rf.Utterances(), lim.maxUtterances(); n > max {
		return fmt.Errorf("%d utterances, more than the limit of %d per router (general_settings.max_router_utterances); split the routes over several routers or raise the limit", n, max)
	}
	maxChars := lim.maxUtteranceChars()
	seen := map[string]bool{}
	for i, r := range rf.Routes {
		if r.Name == "" {
			return fmt.Errorf("routes[%d]: name is empty; set it to a model_name from model_list", i)
		}
		if seen[r.Name] {
			return fmt.Errorf("route %q appears twice; merge its utterances into one route", r.Name)
		}
		seen[r.Name] = true
		if t := r.ScoreThreshold; t != nil && !(*t >= 0 && *t <= 1) {
			return fmt.Errorf("route %q: score_threshold %g outside [0,1]", r.Name, *t)
		}
		n := 0
		for j, u := range r.Utterances {
			if len(u) > maxChars {
				return fmt.Errorf("route %q: utterances[%d] is %d bytes, more than the limit of %d (general_settings.max_utterance_chars); only the first %d characters of a prompt are embedded anyway", r.Name, j, len(u), maxChars, DefaultMaxTextChars)
			}
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

// DefaultMaxTextChars is how much of a prompt is embedded by default.
const DefaultMaxTextChars = 2000

// readRouterFile loads and parses a router.json from disk, refusing files
// over the size limit before reading them.
func readRouterFile(path string, lim Limits) (*RouterFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading router config: %w", err)
	}
	defer f.Close()
	max := lim.maxRouterFileBytes()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading router config %s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("router config %s is larger than the limit of %d bytes (general_settings.max_router_file_bytes)", path, max)
	}
	rf, err := ParseRouter(path, data)
	if err != nil {
		return nil, err
	}
	rf.Path = path
	return rf, nil
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
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		off = int64(len(data))
		err = errors.New("unexpected end of JSON input")
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

func asTypeError(err error, te **json.UnmarshalTypeError) bool { return errors.As(err, te) }

// jsonKeys returns the JSON names of a struct's fields.
func jsonKeys(v any) map[string]bool {
	t := reflect.TypeOf(v)
	keys := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		name := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
		if name != "" && name != "-" {
			keys[name] = true
		}
	}
	return keys
}

// unknownJSONKeys lists top-level and per-route keys RouterFile does not know.
func unknownJSONKeys(data []byte) []string {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return nil
	}
	var out []string
	knownTop, knownRoute := jsonKeys(RouterFile{}), jsonKeys(RouteSpec{})
	for _, k := range slices.Sorted(maps.Keys(top)) {
		if !knownTop[k] {
			out = append(out, k)
		}
	}
	var routes []map[string]json.RawMessage
	if json.Unmarshal(top["routes"], &routes) != nil {
		return out
	}
	for i, r := range routes {
		for _, k := range slices.Sorted(maps.Keys(r)) {
			if !knownRoute[k] {
				out = append(out, fmt.Sprintf("routes[%d].%s", i, k))
			}
		}
	}
	return out
}
