package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Secret is a credential from the config. It prints as "[redacted]" through
// fmt, slog, JSON and YAML so that keys never reach logs, errors or API
// answers; call Value for the real string.
type Secret string

// Value returns the secret itself. Use it only where the key is sent.
func (s Secret) Value() string { return string(s) }

// String redacts the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString redacts the secret for %#v.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalText redacts the secret in JSON and YAML output.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Redacted is what a Secret marshals to.
const Redacted = "[redacted]"

// Duration is a config duration. It decodes from a number of seconds
// (LiteLLM's form: timeout: 30, or 0.5) or a Go duration string ("500ms",
// "1m"), and encodes to JSON as seconds.
type Duration time.Duration

// UnmarshalYAML accepts seconds as a number or a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration such as 30 (seconds) or \"500ms\"", n.Line)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = v
	return nil
}

// UnmarshalJSON accepts seconds as a number or a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalJSON encodes the duration as seconds, LiteLLM's form.
func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, time.Duration(d).Seconds(), 'g', -1, 64), nil
}

// ParseDuration parses seconds ("30", "0.5") or a Go duration ("500ms").
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if !(f >= 0) || f > 1e9 {
			return 0, fmt.Errorf("invalid duration %q: want 0 or more seconds", s)
		}
		return Duration(f * float64(time.Second)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("invalid duration %q: use seconds like 30 or 0.5, or a Go duration like \"500ms\", \"5s\", \"1m\"", s)
	}
	return Duration(v), nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Or returns d, or def when d is zero.
func (d Duration) Or(def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return time.Duration(d)
}

// modelInfoFields is ModelInfo without its methods, for the default codec.
type modelInfoFields ModelInfo

// MarshalJSON writes the typed fields and Other's keys in one object.
func (m ModelInfo) MarshalJSON() ([]byte, error) {
	typed, err := json.Marshal(modelInfoFields(m))
	if err != nil {
		return nil, err
	}
	if len(m.Other) == 0 {
		return typed, nil
	}
	var all map[string]any
	if err := json.Unmarshal(typed, &all); err != nil {
		return nil, err
	}
	for k, v := range m.Other {
		if _, ok := all[k]; !ok {
			all[k] = v
		}
	}
	return json.Marshal(all)
}

// UnmarshalJSON decodes the typed fields strictly (a wrong type is an
// error naming the key) and keeps every other key in Other.
func (m *ModelInfo) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return nil
	}
	var f modelInfoFields
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("model_info: %w", jsonFieldError(err))
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return fmt.Errorf("model_info: %w", err)
	}
	known := jsonKeys(modelInfoFields{})
	for k, raw := range all {
		if known[k] {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("model_info.%s: %w", k, err)
		}
		if f.Other == nil {
			f.Other = map[string]any{}
		}
		f.Other[k] = v
	}
	*m = ModelInfo(f)
	return nil
}

// Clone returns a copy of m whose Other map is its own.
func (m ModelInfo) Clone() ModelInfo {
	m.Other = maps.Clone(m.Other)
	return m
}

// jsonFieldError rewords a type error as "field: want type".
func jsonFieldError(err error) error {
	var te *json.UnmarshalTypeError
	if ok := asTypeError(err, &te); ok && te.Field != "" {
		return fmt.Errorf("%s: cannot use a JSON %s here, want %s", te.Field, te.Value, te.Type)
	}
	return err
}
