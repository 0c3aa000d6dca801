package proxy

import (
	"context"
	"encoding/json"
	"net"
	"strings"
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

// TestRouteNearest checks the dry run's ?nearest=k: the router's own
// utterances, from the chosen route first, and a clear 400 for a bad k.
func TestRouteNearest(t *testing.T) {
	base := startExampleProxy(t, false)
	body := `{"model":"auto","messages":[{"role":"user","content":"implement binary search in go please"}]}`
	resp, out := post(t, base+"/route?nearest=2", "sk-1234", body)
	var d struct {
		Route   string `json:"route"`
		Nearest []struct {
			Route, Utterance string
			Score            float32
		} `json:"nearest"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s: %v", resp.StatusCode, out, err)
	}
	if d.Route != "coder" || len(d.Nearest) != 2 || d.Nearest[0].Utterance != "implement binary search in go" || d.Nearest[0].Route != "coder" || d.Nearest[0].Score < d.Nearest[1].Score {
		t.Fatalf("decision %s: want coder, and its binary search utterance nearest", out)
	}
	if _, out := post(t, base+"/route", "sk-1234", body); strings.Contains(out, `"nearest"`) {
		t.Errorf("nearest listed unasked: %s", out)
	}
	for _, k := range []string{"-1", "x", "101"} {
		if resp, out := post(t, base+"/route?nearest="+k, "sk-1234", body); resp.StatusCode != 400 || !strings.Contains(out, `"param":"nearest"`) {
			t.Errorf("nearest=%s: %d %s", k, resp.StatusCode, out)
		}
	}
}
