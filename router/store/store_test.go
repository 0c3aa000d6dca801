package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autorouter/autorouter/router/config"
	"github.com/autorouter/autorouter/router/internal/testenv"
)

func backends(t *testing.T) map[string]Options {
	return map[string]Options{
		"sqlite":   {Path: filepath.Join(t.TempDir(), "m.db"), Secret: "k"},
		"postgres": {URL: testenv.PostgresDB(t), Secret: "k"},
	}
}

func TestStoreRoundTrip(t *testing.T) {
	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			th := 0.5
			row := Row{ID: "id-1", ModelName: "auto", Params: config.LiteLLMParams{Model: "auto_router/auto", APIKey: "sk-secret",
				AutoRouterConfig:       &config.RouterFile{Routes: []config.RouteSpec{{Name: "a", Utterances: []string{"x"}, ScoreThreshold: &th}}},
				AutoRouterDefaultModel: "b", Other: map[string]any{"rpm": 10.0}},
				Info: config.ModelInfo{Other: map[string]any{"description": "d"}}}
			v, err := s.Write(ctx, 0, Change{Put: []Row{row}, By: "test"})
			if err != nil || v != 1 {
				t.Fatalf("write: %v %v", v, err)
			}
			if _, err := s.Write(ctx, 0, Change{Delete: []string{"id-1"}}); !errors.Is(err, ErrConflict) {
				t.Fatalf("a write on a stale version: %v, want ErrConflict", err)
			}
			rows, v, bad, err := s.List(ctx)
			if err != nil || v != 1 || len(rows) != 1 || len(bad) != 0 {
				t.Fatalf("list: %v %v %v %v", rows, v, bad, err)
			}
			got := rows[0]
			if got.Params.APIKey.Value() != "sk-secret" || got.Params.AutoRouterConfig.Routes[0].Name != "a" || got.Params.Other["rpm"] != 10.0 ||
				got.Info.Other["description"] != "d" || got.CreatedBy != "test" || got.CreatedAt.IsZero() {
				t.Fatalf("round trip: %+v", got)
			}
			// Reopening migrates nothing and reads the same.
			s2, err := Open(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			rows, _, _, _ = s2.List(ctx)
			s2.Close()
			if len(rows) != 1 {
				t.Fatal("rows lost on reopen")
			}
			// With another key the row is reported, not silently dropped.
			other := opts
			other.Secret = "different"
			s3, err := Open(ctx, other)
			if err != nil {
				t.Fatal(err)
			}
			defer s3.Close()
			_, _, bad, _ = s3.List(ctx)
			if b, ok := bad["id-1"]; !ok || !errors.Is(b.Err, ErrWrongKey) || b.ModelName != "auto" {
				t.Fatalf("wrong key: %+v", bad)
			}
		})
	}
}

// TestListenNotifies: a write through one connection reaches a listener
// on another quickly (Postgres NOTIFY), and the version poll catches
// writes on SQLite.
func TestListenNotifies(t *testing.T) {
	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			a, err := Open(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := Open(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			var changes atomic.Int64
			got := make(chan struct{}, 16)
			go b.Listen(ctx, 300*time.Millisecond, func() { changes.Add(1); got <- struct{}{} })
			time.Sleep(300 * time.Millisecond) // let the listener connect
			for len(got) > 0 {
				<-got
			}
			start := time.Now()
			if _, err := a.Write(ctx, 0, Change{Put: []Row{{ID: "x", ModelName: "m", Params: config.LiteLLMParams{Model: "mock/x"}}}}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-got:
				t.Logf("%s: change seen after %v", name, time.Since(start))
			case <-time.After(2 * time.Second):
				t.Fatalf("%s: no change notification within 2 s", name)
			}
		})
	}
}

func TestOpenErrorsHideSecrets(t *testing.T) {
	_, err := Open(context.Background(), Options{URL: "postgres://user:hunter2@127.0.0.1:1/db?connect_timeout=1", Secret: "k"})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Open(context.Background(), Options{URL: "mysql://x", Secret: "k"}); err == nil || !strings.Contains(err.Error(), "postgres://") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Open(context.Background(), Options{Path: "x.db"}); err == nil || !strings.Contains(err.Error(), "AUTOROUTER_SALT_KEY") {
		t.Fatalf("no secret: %v", err)
	}
}
