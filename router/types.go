package router

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Secret is a credential from the config. It prints as "[redacted]" through
// fmt, slog and JSON so that keys never reach logs, errors or metrics; call
// Value for the real string.
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

// Duration is a config duration. It decodes from a number of seconds
// (LiteLLM's form: timeout: 30, or 0.5) or a Go duration string ("500ms", "1m").
type Duration time.Duration

// UnmarshalYAML accepts seconds as a number or a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("invalid duration at line %d: %w", n.Line, err)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = v
	return nil
}

// ParseDuration parses seconds ("30", "0.5") or a Go duration ("500ms").
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 {
			return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
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
