package ui_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/internal/testenv"
	"github.com/autorouter/autorouter/router/ui"
)

// progressJSON is one entry of GET /ui/api/progress, as the tests read it.
type progressJSON struct {
	Router     string  `json:"router"`
	Done       int     `json:"done"`
	Total      int     `json:"total"`
	PerSecond  float64 `json:"per_second"`
	ETASeconds float64 `json:"eta_seconds"`
	Finished   bool    `json:"finished"`
	Error      string  `json:"error"`
	Updated    string  `json:"updated"`
}

// evalResult is the part of POST /ui/api/eval's answer the tests read.
type evalResult struct {
	Model             string             `json:"model"`
	Rows              int                `json:"rows"`
	Routes            []string           `json:"routes"`
	CurrentThresholds map[string]float32 `json:"current_thresholds"`
	Before            evalReport         `json:"before"`
	After             *evalReport        `json:"after"`
	Thresholds        map[string]float32 `json:"thresholds"`
}

type evalReport struct {
	InScope          int     `json:"in_scope"`
	OutOfScope       int     `json:"out_of_scope"`
	InScopeAccuracy  float64 `json:"in_scope_accuracy"`
	OutOfScopeRecall float64 `json:"out_of_scope_recall"`
	PerRoute         []struct {
		Route             string
		Precision, Recall float64
		Support           int
	} `json:"per_route"`
	Confused []struct {
		Gold, Predicted *string
		Count           int
	} `json:"confused"`
}

const labelled = `{"text": "how to code a program in python", "route": "litellm-claude-35"}
{"text": "how to code a program in rust", "route": "litellm-claude-35"}
{"text": "litellm is great", "route": "litellm-gpt-4.1"}
{"text": "litellm is really great", "route": "litellm-gpt-4.1"}
{"text": "what is the capital of france", "route": null}
{"text": "recommend a good pizza place", "route": null}
`

func TestEvalEndpoint(t *testing.T) {
	s := startServer(t, sqlitePath(t), "127.0.0.1:0")
	if code, out := call(t, "POST", s.base+"/model/new", testenv.SeedMasterKey, testenv.SeedRouter("how to code a program in [language]")); code != 200 {
		t.Fatalf("/model/new: %d %s", code, out)
	}
	var rows []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(labelled), "\n") {
		var r map[string]any
		json.Unmarshal([]byte(line), &r)
		rows = append(rows, r)
	}
	rowsJSON, _ := json.Marshal(rows)
	jsonl, _ := json.Marshal(labelled)

	t.Run("rows with fit", func(t *testing.T) {
		code, out := call(t, "POST", s.base+"/ui/api/eval", testenv.SeedMasterKey, fmt.Sprintf(`{"model":"auto_router1","rows":%s,"fit":{"global":false,"oos_weight":1}}`, rowsJSON))
		if code != 200 {
			t.Fatalf("%d %s", code, out)
		}
		var res evalResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		if res.Rows != 6 || res.Before.InScope != 4 || res.Before.OutOfScope != 2 || res.After == nil || len(res.Thresholds) != 2 {
			t.Fatalf("eval answer %s", out)
		}
		if res.CurrentThresholds["litellm-claude-35"] != 0.5 || res.CurrentThresholds["litellm-gpt-4.1"] != 0.5 {
			t.Fatalf("current thresholds %v", res.CurrentThresholds)
		}
		if len(res.Before.PerRoute) != 2 || res.Before.PerRoute[0].Route != "litellm-claude-35" || res.Before.PerRoute[0].Support != 2 {
			t.Fatalf("per route %s", out)
		}
		for route, th := range res.Thresholds {
			if th < 0 || th > 1 || res.CurrentThresholds[route] == 0 {
				t.Fatalf("fitted threshold %v for route %q: %s", th, route, out)
			}
		}
		if res.After.InScope != 4 || res.After.OutOfScope != 2 {
			t.Fatalf("the report after the fit counts other rows: %s", out)
		}
		var extra struct {
			Fit *struct {
				Objective string `json:"objective"`
			} `json:"fit"`
		}
		json.Unmarshal([]byte(out), &extra)
		if extra.Fit == nil || !strings.Contains(extra.Fit.Objective, "1 × out-of-scope recall") {
			t.Fatalf("the fit's objective is not reported: %s", out)
		}
		t.Logf("before %.2f/%.2f after %.2f/%.2f thresholds %v", res.Before.InScopeAccuracy, res.Before.OutOfScopeRecall,
			res.After.InScopeAccuracy, res.After.OutOfScopeRecall, res.Thresholds)
	})

	t.Run("jsonl without fit", func(t *testing.T) {
		code, out := call(t, "POST", s.base+"/ui/api/eval", testenv.SeedMasterKey, fmt.Sprintf(`{"model":"auto_router1","jsonl":%s}`, jsonl))
		if code != 200 {
			t.Fatalf("%d %s", code, out)
		}
		var res evalResult
		json.Unmarshal([]byte(out), &res)
		if res.Rows != 6 || res.After != nil || res.Thresholds != nil || res.Before.InScope != 4 {
			t.Fatalf("eval answer %s", out)
		}
		if !strings.Contains(out, `"after":null`) || !strings.Contains(out, `"thresholds":null`) {
			t.Fatalf("no fit should give null after and thresholds: %s", out)
		}
	})

	many := make([]string, ui.MaxEvalRows+1)
	for i := range many {
		many[i] = `{"text":"x","route":null}`
	}
	manyJSONL, _ := json.Marshal(strings.Join(many, "\n"))
	for _, tc := range []struct {
		name, body, param, want string
		status                  int
	}{
		{"too many rows", `{"model":"auto_router1","rows":[` + strings.Join(many, ",") + `]}`, "rows", "more than the 20000", 400},
		{"too many jsonl lines", `{"model":"auto_router1","jsonl":` + string(manyJSONL) + `}`, "jsonl", "more than the 20000", 400},
		{"no rows", `{"model":"auto_router1","rows":[]}`, "rows", "no rows", 400},
		{"rows and jsonl", fmt.Sprintf(`{"model":"auto_router1","rows":%s,"jsonl":%s}`, rowsJSON, jsonl), "jsonl", "not both", 400},
		{"bad jsonl line", `{"model":"auto_router1","jsonl":"{\"text\":\"a\",\"route\":null}\nnot json"}`, "jsonl", "line 2", 400},
		{"unknown route label", `{"model":"auto_router1","rows":[{"text":"a","route":"nope"}]}`, "rows", `route "nope" is not a route of auto_router1`, 400},
		{"row without text", `{"model":"auto_router1","rows":[{"route":null}]}`, "rows", "row 1 has no text", 400},
		{"not a router", `{"model":"gpt-4o-mini","rows":[{"text":"a"}]}`, "model", `"gpt-4o-mini" is not an auto router`, 400},
		{"no model", `{"rows":[{"text":"a"}]}`, "model", "model is required", 400},
		{"negative weight", fmt.Sprintf(`{"model":"auto_router1","rows":%s,"fit":{"oos_weight":-1}}`, rowsJSON), "fit.oos_weight", "positive", 400},
		{"recall above 1", fmt.Sprintf(`{"model":"auto_router1","rows":%s,"fit":{"min_oos_recall":1.5}}`, rowsJSON), "fit.min_oos_recall", "(0,1]", 400},
		{"weight and minimum", fmt.Sprintf(`{"model":"auto_router1","rows":%s,"fit":{"oos_weight":1,"min_oos_recall":0.5}}`, rowsJSON), "fit.oos_weight", "cannot both", 400},
		{"wrong type", `{"model":"auto_router1","rows":"all of them"}`, "rows", "cannot use a JSON string", 400},
		{"unknown field", `{"model":"auto_router1","rows":[{"text":"a"}],"fitt":{}}`, "", "unknown field", 400},
		{"not JSON", `{`, "", "not an evaluation", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := call(t, "POST", s.base+"/ui/api/eval", testenv.SeedMasterKey, tc.body)
			msg, param := decodeError(t, out)
			if code != tc.status || param != tc.param || !strings.Contains(msg, tc.want) {
				t.Fatalf("%d param %q %q; want %d param %q with %q", code, param, msg, tc.status, tc.param, tc.want)
			}
		})
	}

	if code, _ := call(t, "POST", s.base+"/ui/api/eval", "", `{"model":"auto_router1","rows":[{"text":"a"}]}`); code != 401 {
		t.Fatalf("eval without the master key: %d", code)
	}
	if code, _ := call(t, "POST", s.base+"/ui/api/eval", "sk-wrong", `{"model":"auto_router1","rows":[{"text":"a"}]}`); code != 401 {
		t.Fatalf("eval with a wrong key: %d", code)
	}
	if code, _ := call(t, "GET", s.base+"/ui/api/eval", testenv.SeedMasterKey, ""); code != 405 {
		t.Fatalf("GET /ui/api/eval: %d", code)
	}
}

// TestEvalOneAtATime: a second evaluation while one runs gets 429 at
// once instead of queueing behind it.
func TestEvalOneAtATime(t *testing.T) {
	s := startServer(t, sqlitePath(t), "127.0.0.1:0")
	if code, out := call(t, "POST", s.base+"/model/new", testenv.SeedMasterKey, testenv.SeedRouter("how to code a program in [language]")); code != 200 {
		t.Fatalf("/model/new: %d %s", code, out)
	}
	var rows []string
	for i := range 2500 {
		rows = append(rows, fmt.Sprintf(`{"text":"question number %d about programs in language %d","route":null}`, i, i%17))
	}
	body := `{"model":"auto_router1","rows":[` + strings.Join(rows, ",") + `]}`
	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = call(t, "POST", s.base+"/ui/api/eval", testenv.SeedMasterKey, body)
		}()
	}
	wg.Wait()
	ok, busy := 0, 0
	for _, c := range codes {
		switch c {
		case 200:
			ok++
		case 429:
			busy++
		default:
			t.Fatalf("status %d", c)
		}
	}
	if ok == 0 || busy == 0 {
		t.Fatalf("want one evaluation to run and the others told to retry: %v", codes)
	}
	t.Logf("concurrent evaluations: %d ran, %d told to retry", ok, busy)
}

// TestProgressEndpoint: while /model/new embeds a router's utterances,
// /ui/api/progress reports it, and then reports it finished.
func TestProgressEndpoint(t *testing.T) {
	s := startServer(t, sqlitePath(t), "127.0.0.1:0")
	if code, out := call(t, "GET", s.base+"/ui/api/progress", testenv.SeedMasterKey, ""); code != 200 || out != `{"data":[]}` {
		t.Fatalf("progress at rest: %d %s", code, out)
	}
	if code, _ := call(t, "GET", s.base+"/ui/api/progress", "", ""); code != 401 {
		t.Fatalf("progress without a key: %d", code)
	}
	const n = 1200
	utts := make([]string, n)
	for i := range utts {
		utts[i] = fmt.Sprintf("example prompt %d about topic %d", i, i%31)
	}
	uj, _ := json.Marshal(utts)
	routes := fmt.Sprintf(`{"routes":[{"name":"litellm-gpt-4.1","utterances":%s,"score_threshold":0.5}]}`, uj)
	body, _ := json.Marshal(map[string]any{"model_name": "big_router", "litellm_params": map[string]any{
		"model": "auto_router/big_router", "auto_router_config": routes,
		"auto_router_default_model": "gpt-4o-mini", "auto_router_embedding_model": "custom-text-embedding-model"}})
	added := make(chan string, 1)
	start := time.Now()
	go func() {
		code, out := call(t, "POST", s.base+"/model/new", testenv.SeedMasterKey, string(body))
		added <- fmt.Sprintf("%d %s", code, out)
	}()
	type entry = progressJSON
	var midway, last *entry
	var res string
	for res == "" {
		select {
		case res = <-added:
		case <-time.After(15 * time.Millisecond):
		}
		_, out := call(t, "GET", s.base+"/ui/api/progress", testenv.SeedMasterKey, "")
		var p struct{ Data []entry }
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		for _, e := range p.Data {
			if e.Router == "big_router" {
				last = &e
				if !e.Finished && midway == nil {
					midway = &e
				}
			}
		}
	}
	if !strings.HasPrefix(res, "200 ") {
		t.Fatalf("/model/new: %s", res)
	}
	if last == nil || !last.Finished || last.Done != n || last.Total != n || last.PerSecond <= 0 || last.ETASeconds != 0 {
		t.Fatalf("last progress %+v", last)
	}
	if _, err := time.Parse(time.RFC3339Nano, last.Updated); err != nil {
		t.Fatalf("updated %q: %v", last.Updated, err)
	}
	t.Logf("%d utterances in %v (%.0f/s); seen midway: %+v", n, time.Since(start).Round(time.Millisecond), last.PerSecond, midway)
	if midway != nil && (midway.Done >= n || midway.Total != n || midway.ETASeconds <= 0) {
		t.Fatalf("midway progress %+v", midway)
	}
}

// TestProgressTracker checks the tracker alone: entries by router name,
// a rebuild starting over, and a nil tracker serving an empty list.
func TestProgressTracker(t *testing.T) {
	p := ui.NewProgress()
	h := ui.New(ui.Options{Progress: p})
	get := func(h *ui.Handler) string {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI("/ui/api/progress")
		h.Handle(&ctx)
		if ctx.Response.StatusCode() != 200 {
			t.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
		return string(ctx.Response.Body())
	}
	p.Update(router.Progress{Router: "b", Done: 64, Total: 1000, PerSecond: 32})
	p.Update(router.Progress{Router: "a", Done: 10, Total: 10, PerSecond: 100})
	p.Update(router.Progress{Router: "b", Done: 128, Total: 1000, PerSecond: 64})
	var got struct {
		Data []progressJSON
	}
	json.Unmarshal([]byte(get(h)), &got)
	if len(got.Data) != 2 || got.Data[0].Router != "a" || !got.Data[0].Finished || got.Data[1].Router != "b" ||
		got.Data[1].Done != 128 || got.Data[1].Finished || got.Data[1].PerSecond != 64 {
		t.Fatalf("%+v", got)
	}
	if eta := got.Data[1].ETASeconds; eta < 13.5 || eta > 13.7 {
		t.Fatalf("eta %v, want (1000-128)/64 = 13.6 s", eta)
	}
	// A failed build says so and keeps its last count; the next build
	// starts over.
	p.Update(router.Progress{Router: "b", Err: errors.New("embedding utterances: upstream said 400")})
	json.Unmarshal([]byte(get(h)), &got)
	if b := got.Data[1]; b.Error != "embedding utterances: upstream said 400" || b.Finished || b.Done != 128 || b.ETASeconds != 0 {
		t.Fatalf("failed build %+v", b)
	}
	p.Update(router.Progress{Router: "b", Done: 1, Total: 1000})
	got.Data = nil
	json.Unmarshal([]byte(get(h)), &got)
	if b := got.Data[1]; b.Error != "" || b.Done != 1 {
		t.Fatalf("rebuild after a failure %+v", b)
	}
	if out := get(ui.New(ui.Options{})); out != `{"data":[]}` {
		t.Fatalf("nil tracker: %s", out)
	}
	var nilP *ui.Progress
	nilP.Update(router.Progress{Router: "x", Done: 1, Total: 2}) // must not panic
	// Concurrent updates, as several routers embed at once.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				p.Update(router.Progress{Router: fmt.Sprintf("r%d", i), Done: j, Total: 200, PerSecond: 10})
			}
		}()
	}
	for range 20 {
		get(h)
	}
	wg.Wait()
}

// TestAssets: the page and every file it imports are served from the
// binary, with a strict content security policy and revalidation.
func TestAssets(t *testing.T) {
	s := startServer(t, sqlitePath(t), "127.0.0.1:0")
	for _, p := range []string{"/ui", "/ui/"} {
		resp, body := testenv.Send(t, "GET", s.base+p, "", "")
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, `<script type="module" src="/ui/assets/app.js">`) {
			t.Fatalf("GET %s: %d %s", p, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
			t.Fatalf("CSP %q", csp)
		}
	}
	// A browser opening the server's address is sent to the page; an API
	// client's GET / is not.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for accept, want := range map[string]int{"text/html,application/xhtml+xml": 302, "application/json": 401} {
		req, _ := http.NewRequest("GET", s.base+"/", nil)
		req.Header.Set("Accept", accept)
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want || (want == 302 && !strings.HasSuffix(resp.Header.Get("Location"), "/ui/")) {
			t.Fatalf("GET / with Accept %s: %d, Location %q; want %d", accept, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
	// Walk the page's references and the modules' imports: with no
	// bundler, a typo in a file name would only show in a browser.
	_, index := testenv.Send(t, "GET", s.base+"/ui", "", "")
	refs := regexp.MustCompile(`(?:src|href)="(/ui/assets/[^"]+)"`).FindAllStringSubmatch(index, -1)
	imports := regexp.MustCompile(`(?m)^import .* from '\./([a-z]+\.js)';`)
	remote := regexp.MustCompile(`(?:from|import\(|fetch\(|url\()\s*['"]?(?:https?:)?//`)
	seen := map[string]bool{}
	queue := []string{}
	for _, r := range refs {
		queue = append(queue, r[1])
	}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		resp, body := testenv.Send(t, "GET", s.base+p, "", "")
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s (referenced by the page): %d", p, resp.StatusCode)
		}
		if strings.HasSuffix(p, ".js") {
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
				t.Fatalf("%s served as %q", p, ct)
			}
			if remote.MatchString(body) {
				t.Fatalf("%s loads from an absolute URL (%s); the page must load nothing from elsewhere", p, remote.FindString(body))
			}
			for _, m := range imports.FindAllStringSubmatch(body, -1) {
				queue = append(queue, "/ui/assets/"+m[1])
			}
		}
	}
	if len(seen) < 10 {
		t.Fatalf("only %d assets reachable from the page: %v", len(seen), seen)
	}
	// Revalidation: an unchanged file costs a 304.
	resp, _ := testenv.Send(t, "GET", s.base+"/ui/assets/app.js", "", "")
	etag := resp.Header.Get("ETag")
	req, _ := http.NewRequest("GET", s.base+"/ui/assets/app.js", nil)
	req.Header.Set("If-None-Match", etag)
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if etag == "" || r2.StatusCode != 304 {
		t.Fatalf("ETag %q, revalidation %d", etag, r2.StatusCode)
	}
	for _, tc := range []struct {
		method, path, key string
		status            int
	}{
		{"GET", "/ui/assets/nope.js", "", 404},
		{"GET", "/ui/elsewhere", "", 404},
		{"POST", "/ui", "", 405},
		{"GET", "/ui/api/nope", testenv.SeedMasterKey, 404},
		{"GET", "/ui/api/nope", "", 401},
		{"GET", "/ui/api/info", "sk-wrong", 401},
		{"POST", "/ui/api/info", testenv.SeedMasterKey, 405},
	} {
		if code, out := call(t, tc.method, s.base+tc.path, tc.key, ""); code != tc.status {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, code, out, tc.status)
		}
	}
	code, out := call(t, "GET", s.base+"/ui/api/info", testenv.SeedMasterKey, "")
	var info struct {
		Ready             bool               `json:"ready"`
		DefaultThresholds map[string]float32 `json:"default_thresholds"`
		MaxEvalRows       int                `json:"max_eval_rows"`
	}
	json.Unmarshal([]byte(out), &info)
	if code != 200 || !info.Ready || info.DefaultThresholds["custom-text-embedding-model"] != 0.5 || info.MaxEvalRows != ui.MaxEvalRows {
		t.Fatalf("/ui/api/info: %d %s", code, out)
	}
	if _, ok := info.DefaultThresholds["gpt-4o-mini"]; ok {
		t.Fatalf("a mock chat model listed as an embedder: %s", out)
	}
}

// TestLoading: before the routers are loaded the page is served and its
// API says so with 503.
func TestLoading(t *testing.T) {
	h := ui.New(ui.Options{Client: func() *router.Client { return nil }})
	for _, p := range []string{"/ui/api/info", "/ui/api/eval"} {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(p)
		if strings.HasSuffix(p, "eval") {
			ctx.Request.Header.SetMethod("POST")
		}
		h.Handle(&ctx)
		if ctx.Response.StatusCode() != 503 || !strings.Contains(string(ctx.Response.Body()), "still loading") {
			t.Fatalf("%s while loading: %d %s", p, ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/ui")
	h.Handle(&ctx)
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("/ui while loading: %d", ctx.Response.StatusCode())
	}
}
