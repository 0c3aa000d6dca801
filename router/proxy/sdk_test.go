package proxy

import (
	"context"
	"net"
	"testing"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/config"
	"github.com/autorouter/autorouter/router/internal/testenv"
)

// TestOpenAINodeSDK runs the official OpenAI Node SDK (testdata/node)
// against the real proxy, real router and real local model over loopback.
func TestOpenAINodeSDK(t *testing.T) {
	base := startExampleProxy(t, false)
	runNode(t, "testdata/node", "sdk.test.mjs", "AUTOROUTER_BASE_URL="+base+"/v1", "AUTOROUTER_KEY=sk-1234")
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
	c, err := router.New(context.Background(), cfg, router.Options{ModelsDir: testenv.ModelsDir(tb)})
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
