// Package testenv finds the real parts tests run against: the local model
// scripts/setup.sh builds and the Postgres, Redis and Chromium that
// scripts/services.sh starts. Where those parts are required (CI,
// scripts/test.sh) a missing one fails the test rather than skipping it.
// It also holds the seed's fixtures (SeedConfig, SeedRouter) and the HTTP
// helpers the proxy and page tests share.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Required reports whether the real servers must be there: scripts/test.sh
// sets AUTOROUTER_REQUIRE_SERVICES and CI sets CI.
func Required() bool {
	return os.Getenv("AUTOROUTER_REQUIRE_SERVICES") != "" || os.Getenv("CI") != ""
}

// Service returns the value of env, the address of a server
// scripts/services.sh started. It fails the test when the servers are
// required and skips it otherwise.
func Service(tb testing.TB, env string) string {
	tb.Helper()
	v := os.Getenv(env)
	if v == "" {
		if Required() {
			tb.Fatalf("%s is not set: scripts/test.sh starts Postgres, Redis and Chromium (scripts/services.sh) and sets it", env)
		}
		tb.Skipf("%s not set; run scripts/test.sh, which starts the real servers", env)
	}
	return v
}

// PostgresDB creates a database of its own for one test on the test
// Postgres and drops it when the test ends; it returns its URL.
func PostgresDB(tb testing.TB) string {
	tb.Helper()
	admin := Service(tb, "AUTOROUTER_TEST_POSTGRES_ADMIN_URL")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Fatalf("connecting to the test Postgres: %v", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("creating test database: %v", err)
	}
	tb.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), admin); err == nil {
			c.Exec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	return strings.Replace(admin, "/postgres?", "/"+name+"?", 1)
}

// ModelsDir returns the repository's models directory, which
// scripts/setup.sh fills, and fails the test with that hint when the local
// model is not built.
func ModelsDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
	models := filepath.Join(dir, "models")
	if _, err := os.Stat(filepath.Join(models, "all-MiniLM-L6-v2", "model_int8.onnx")); err != nil {
		tb.Fatalf("local model missing (%v); run scripts/setup.sh", err)
	}
	return models
}

// WaitFor polls cond every 20 ms until it holds, failing the test after
// 5 s, and returns how long it took.
func WaitFor(tb testing.TB, what string, cond func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 5*time.Second {
			tb.Fatalf("%s: not within 5 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// Chromium returns the path of the headless browser the page tests drive:
// AUTOROUTER_TEST_CHROMIUM, else Debian's /usr/bin/chromium. A missing
// browser fails the test where the real parts are required and skips it
// otherwise.
func Chromium(tb testing.TB) string {
	tb.Helper()
	path := os.Getenv("AUTOROUTER_TEST_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		if Required() {
			tb.Fatalf("chromium not found at %s (set AUTOROUTER_TEST_CHROMIUM; apt-get install chromium): %v", path, err)
		}
		tb.Skipf("chromium not found at %s (set AUTOROUTER_TEST_CHROMIUM to run the browser tests): %v", path, err)
	}
	return path
}
