package proxy

import (
	"context"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/config"
)

// TestOpenAINodeSDK runs the official OpenAI Node SDK (testdata/node)
// against the real proxy, real router and real local model over loopback.
func TestOpenAINodeSDK(t *testing.T) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required for the OpenAI SDK test: install Node.js and npm", tool)
		}
	}
	base := startExampleProxy(t, false)

	dir := "testdata/node"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
	run := exec.CommandContext(ctx, "node", "--test", "sdk.test.mjs")
	run.Dir = dir
	run.Env = append(os.Environ(), "AUTOROUTER_BASE_URL="+base+"/v1", "AUTOROUTER_KEY=sk-1234")
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("OpenAI Node SDK tests failed: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// startExampleProxy serves the example config (an auto router over mock
// upstreams, local MiniLM int8), optionally with micro-batching, with the
// real router on a loopback port and returns its base URL.
func startExampleProxy(tb testing.TB, microBatch bool) string {
	tb.Helper()
	cfg, err := config.Load("../../cmd/autorouter/example/config.yaml", config.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	if microBatch {
		for i := range cfg.ModelList {
			if cfg.ModelList[i].Params.Provider() == config.ProviderLocal {
				cfg.ModelList[i].ModelInfo.MicroBatch = true
			}
		}
	}
	c, err := router.New(context.Background(), cfg, router.Options{ModelsDir: testModels(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	srv := New(Options{Limits: cfg.GeneralSettings.Limits})
	if err := srv.SetClient(c); err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(ln)
	tb.Cleanup(func() {
		srv.Shutdown(context.Background())
		c.Close()
	})
	return "http://" + ln.Addr().String()
}
