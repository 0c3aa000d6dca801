package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/autorouter/autorouter/bench/fake"
	"github.com/autorouter/autorouter/router/config"
)

func TestReadSSE(t *testing.T) {
	ev := `data: {"choices":[{"delta":{"content":"hi"}}]}` + "\n\n"
	for _, tc := range []struct {
		name, in string
		want     sseResult
	}{
		{"done", ev + ev + "data: [DONE]\n\n", sseResult{events: 2, done: true}},
		{"crlf and no space", strings.ReplaceAll(ev, "\n", "\r\n") + "data:[DONE]\r\n\r\n", sseResult{events: 1, done: true}},
		{"cut off", ev + `data: {"error":{"message":"x","type":"upstream_error","param":null,"code":"stream_cut_off"}}` + "\n\n",
			sseResult{events: 1, errCode: "stream_cut_off"}},
		{"null code", `data: {"error":{"message":"x","code":null}}` + "\n\n", sseResult{errCode: "null"}},
		{"silent cut", ev + "data: {\"choices\"", sseResult{events: 1}},
		{"comments only", ": ping\n\n", sseResult{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := readSSE(strings.NewReader(tc.in)); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	got := readSSE(io.MultiReader(strings.NewReader(ev), errReader{}))
	if got.events != 1 || got.err == nil {
		t.Errorf("a read error must be kept: %+v", got)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestParseStatusLine(t *testing.T) {
	for in, want := range map[string]int{
		"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n": 431,
		"HTTP/1.0 400 Bad Request\r\n":                                              400,
		"HTTP/1.1 200\r\n":                                                          200,
	} {
		if got, err := parseStatusLine([]byte(in)); err != nil || got != want {
			t.Errorf("parseStatusLine(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "garbage\r\n", "HTTP/1.1 abc OK\r\n", "HTTP/2 200\r\n", "HTTP/1.1 42 x\r\n"} {
		if _, err := parseStatusLine([]byte(bad)); err == nil {
			t.Errorf("parseStatusLine(%q) gave no error", bad)
		}
	}
}

func TestCloseDelays(t *testing.T) {
	t0 := time.Unix(1000, 0)
	recs := []fake.ConnRecord{
		{Tag: "a", Closed: t0.Add(300 * time.Millisecond).UnixNano(), ByPeer: true},
		{Tag: "b", Closed: t0.Add(3 * time.Second).UnixNano(), ByPeer: false}, // the fake ended it
		{Tag: "c"}, // still open
		{Tag: "other", Closed: t0.UnixNano(), ByPeer: true}, // not ours
	}
	gave := map[string]time.Time{"a": t0, "b": t0, "c": t0, "d": t0}
	delays, missing, early := closeDelays(recs, gave)
	if missing != 2 || early != 1 || len(delays) != 2 || delays[0] != 300*time.Millisecond || delays[1] != 3*time.Second {
		t.Fatalf("delays %v missing %d early %d; want [300ms 3s], 2 missing (c open, d unseen), 1 early", delays, missing, early)
	}
}

// TestRelConfigsLoad runs every config the reliability section writes
// through autorouter's own loader, so that a format drift fails here
// rather than in the middle of a soak run.
func TestRelConfigsLoad(t *testing.T) {
	h := &harness{upBase: "http://127.0.0.1:9"}
	r := &relRun{h: h}
	configs := map[string]string{
		"main.yaml":     relConfigYAML(h.mainModels(), relRouter, "max_response_size_mb: 16", "header_timeout: 2", "max_connections: 2000"),
		"lowfd.yaml":    relConfigYAML([]relModel{h.upstreamModel("ok", "fake-model", "timeout: 8")}, "", "header_timeout: 2"),
		"embed.yaml":    relConfigYAML([]relModel{{name: "minilm", params: "model: local/all-MiniLM-L6-v2", info: "quantized: true"}}, "", "max_queued_embeddings: 8"),
		"reload0.yaml":  r.reloadConfig(0),
		"reload3.yaml":  r.reloadConfig(3),
		"shutdown.yaml": relConfigYAML([]relModel{h.upstreamModel("slow", fake.FaultSlowStream, "timeout: 30, stream_timeout: 2")}, ""),
	}
	dir := t.TempDir()
	for name, body := range configs {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path, config.Options{})
		if err != nil {
			t.Errorf("%s does not load: %v\n%s", name, err, body)
			continue
		}
		if cfg.GeneralSettings.MasterKey.Value() != relKey {
			t.Errorf("%s: master key not set", name)
		}
		switch name {
		case "main.yaml":
			l := cfg.GeneralSettings.Limits
			if l.HeaderTimeout.D() != relHeaderTimeout || l.MaxResponseSizeMB != 16 || l.MaxConnections != 2000 {
				t.Errorf("main.yaml limits: %+v", l)
			}
			if g := cfg.Group("mixed"); len(g) != 2 {
				t.Errorf("main.yaml: mixed has %d deployments, want 2", len(g))
			}
			if g := cfg.Group("fault-slowstream"); len(g) != 1 || g[0].Params.Timeout.D() != time.Second || g[0].Params.StreamTimeout.D() != 2*time.Second {
				t.Errorf("main.yaml: fault-slowstream timeouts: %+v", g)
			}
		case "reload3.yaml":
			if g := cfg.Group("added-3"); len(g) != 1 {
				t.Errorf("reload3.yaml: no added-3 model")
			}
			if g := cfg.Group("mocked"); len(g) != 1 || g[0].Params.MockResponse == nil || *g[0].Params.MockResponse != "generation 3" {
				t.Errorf("reload3.yaml: mocked: %+v", g)
			}
		}
	}
}

func TestRlimitPrefix(t *testing.T) {
	p := rlimitPrefix(256)
	if len(p) < 3 || !strings.Contains(strings.Join(p, " "), "256") {
		t.Fatalf("prefix %q does not set the limit", p)
	}
}

func TestMdCellAndCount(t *testing.T) {
	if got := mdCell("a | b\n  c"); got != `a \| b c` {
		t.Errorf("mdCell: %q", got)
	}
	for n, want := range map[int]string{200: "200", 1000: "1,000", 6000: "6,000", 2049: "2,049", 20000: "20,000"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestRelOrder(t *testing.T) {
	in := []string{"rel-main", "5. fault-500", "3b. key in logs", "2b. low open-file limit (over)", "10. later", "3. secret leakage", "1. concurrent streams", "2. silent"}
	slices.SortStableFunc(in, relCompare)
	want := "1. concurrent streams|2. silent|2b. low open-file limit (over)|3. secret leakage|3b. key in logs|5. fault-500|10. later|rel-main"
	if got := strings.Join(in, "|"); got != want {
		t.Errorf("order %s\nwant  %s", got, want)
	}
}
