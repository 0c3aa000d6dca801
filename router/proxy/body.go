package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// clientOnlyKeys are request fields a client could use to redirect the
// proxy's upstream traffic or credentials; they are dropped before
// forwarding and never read.
var clientOnlyKeys = map[string]bool{"api_base": true, "api_key": true, "base_url": true, "mock_response": true}

// rewriteBody returns body with its top-level "model" set to model and
// clientOnlyKeys removed. Every other value is copied byte for byte.
func rewriteBody(dst, body []byte, model string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("request body must be a JSON object")
	}
	dst = append(dst, '{')
	first, sawModel := true, false
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := kt.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		if clientOnlyKeys[key] {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendJSONString(dst, key)
		dst = append(dst, ':')
		if key == "model" {
			sawModel = true
			dst = appendJSONString(dst, model)
		} else {
			dst = append(dst, raw...)
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON object")
	}
	if !sawModel {
		if !first {
			dst = append(dst, ',')
		}
		dst = append(dst, `"model":`...)
		dst = appendJSONString(dst, model)
	}
	return append(dst, '}'), nil
}

func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s)
	return append(dst, b...)
}
