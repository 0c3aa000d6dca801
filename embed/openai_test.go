package embed

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// embeddingsServer is a local server speaking OpenAI's /v1/embeddings,
// standing in for the remote provider. fail decides per call whether to
// answer with an error status instead.
func embeddingsServer(t *testing.T, dim int, fail func(call int64) int) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if r.URL.Path != "/v1/embeddings" || r.Header.Get("Authorization") != "Bearer sk-test" {
			http.Error(w, `{"error":{"message":"bad path or key"}}`, 401)
			return
		}
		if fail != nil {
			if s := fail(n); s != 0 {
				w.WriteHeader(s)
				fmt.Fprintf(w, `{"error":{"message":"status %d on purpose"}}`, s)
				return
			}
		}
		var req struct {
			Model string   `json:"model"`
			Input []string `json:"input"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		type item struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		}
		var data []item
		// Answer in reverse order: clients must honour "index".
		for i := len(req.Input) - 1; i >= 0; i-- {
			v := make([]float32, dim)
			v[i%dim] = 3
			v[(i+1)%dim] = 4
			data = append(data, item{i, v})
		}
		json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": req.Model})
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestOpenAIEncoderBatchesAndNormalises(t *testing.T) {
	srv, calls := embeddingsServer(t, 8, nil)
	e, err := NewOpenAI(OpenAIOptions{BaseURL: srv.URL + "/v1", APIKey: "sk-test", Model: "local-embed", BatchSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	if e.Dim() != 0 {
		t.Fatal("unknown model should have Dim 0 before Probe")
	}
	if err := e.Probe(context.Background()); err != nil || e.Dim() != 8 {
		t.Fatalf("Probe: dim %d err %v", e.Dim(), err)
	}
	texts := []string{"a", "b", "c", "d", "e", "f", "g"}
	dst := make([]float32, len(texts)*8)
	if err := e.Embed(context.Background(), texts, dst); err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != 1+3 {
		t.Fatalf("%d requests, want 1 probe + 3 batches", got)
	}
	for i := range texts {
		v := dst[i*8 : (i+1)*8]
		if math.Abs(float64(v[(i%3)%8])-0.6) > 1e-6 || math.Abs(float64(v[(i%3+1)%8])-0.8) > 1e-6 {
			t.Fatalf("text %d: vector %v not in input order or not normalised", i, v)
		}
	}
	if !strings.HasPrefix(e.ModelID(), "openai:"+srv.URL) {
		t.Fatalf("ModelID %q", e.ModelID())
	}
}

func TestOpenAIEncoderErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fail      func(int64) int
		wantCalls int64
		wantErr   string
	}{
		{"429 then success", func(n int64) int { return map[bool]int{true: 429}[n == 1] }, 2, ""},
		{"5xx exhausted", func(int64) int { return 503 }, 3, "503"},
		{"400 not retried", func(int64) int { return 400 }, 1, "400: status 400 on purpose"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, calls := embeddingsServer(t, 4, tc.fail)
			e, _ := NewOpenAI(OpenAIOptions{BaseURL: srv.URL + "/v1", APIKey: "sk-test", Model: "m", Dim: 4, MaxRetries: 2})
			e.backoff = time.Millisecond
			err := e.Embed(context.Background(), []string{"x"}, make([]float32, 4))
			if calls.Load() != tc.wantCalls {
				t.Errorf("%d calls, want %d", calls.Load(), tc.wantCalls)
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "sk-test") {
				t.Fatal("API key in error")
			}
		})
	}
	t.Run("wrong dimension", func(t *testing.T) {
		srv, _ := embeddingsServer(t, 4, nil)
		e, _ := NewOpenAI(OpenAIOptions{BaseURL: srv.URL + "/v1", APIKey: "sk-test", Model: "m", Dim: 5})
		if err := e.Embed(context.Background(), []string{"x"}, make([]float32, 5)); err == nil || !strings.Contains(err.Error(), "want 5") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("password in api_base", func(t *testing.T) {
		e, _ := NewOpenAI(OpenAIOptions{BaseURL: "http://user:pw-secret@127.0.0.1:1/v1", Model: "m", Dim: 4, MaxRetries: -1})
		err := e.Embed(context.Background(), []string{"x"}, make([]float32, 4))
		if err == nil || strings.Contains(err.Error(), "pw-secret") || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Fatalf("err = %v: want the endpoint without its password", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		}))
		defer slow.Close()
		e, _ := NewOpenAI(OpenAIOptions{BaseURL: slow.URL, Model: "m", Dim: 4, Timeout: 50 * time.Millisecond, MaxRetries: -1})
		start := time.Now()
		if err := e.Embed(context.Background(), []string{"x"}, make([]float32, 4)); err == nil || time.Since(start) > 2*time.Second {
			t.Fatalf("err = %v after %v", err, time.Since(start))
		}
	})
	t.Run("bad options", func(t *testing.T) {
		for _, o := range []OpenAIOptions{{Model: "m"}, {BaseURL: "ftp://x", Model: "m"}, {BaseURL: "http://x"}} {
			if _, err := NewOpenAI(o); err == nil {
				t.Errorf("NewOpenAI(%+v): want an error", o)
			}
		}
	})
}
