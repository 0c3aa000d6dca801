package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/config"
	"github.com/autorouter/autorouter/router/internal/testenv"
	"github.com/autorouter/autorouter/router/manage"
	"github.com/autorouter/autorouter/router/store"
)

// replica is one running proxy with the management API.
type replica struct {
	base    string
	srv     *Server
	client  *router.Client
	manager *manage.Manager
	stop    func()
}

// startReplica serves cfgYAML with the management API over the database
// in st, as `autorouter serve` does.
func startReplica(t testing.TB, cfgYAML string, st store.Options) *replica {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	os.WriteFile(path, []byte(cfgYAML), 0o644)
	cfg, err := config.Load(path, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m, c, err := manage.Start(ctx, cfg, manage.StartOptions{Router: router.Options{ModelsDir: testenv.ModelsDir(t)}, Store: &st, Interval: 200 * time.Millisecond})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	srv := New(Options{Limits: cfg.GeneralSettings.Limits})
	srv.SetManager(m)
	srv.SetClient(c)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	r := &replica{base: "http://" + ln.Addr().String(), srv: srv, client: c, manager: m}
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			srv.Shutdown(context.Background())
			cancel()
			c.Close()
			m.Close()
		})
	}
	t.Cleanup(r.stop)
	return r
}

// call is send returning the status code.
func call(t testing.TB, method, url, key, body string) (int, string) {
	t.Helper()
	resp, out := testenv.Send(t, method, url, key, body)
	return resp.StatusCode, out
}

func sqlite(t testing.TB) store.Options {
	return store.Options{Path: filepath.Join(t.TempDir(), "models.db"), Secret: "sk-admin"}
}

// TestSeedFlowThroughAPI is the seed's flow on a running proxy: add
// auto_router1 with its two routes, route the seed's prompt, change an
// utterance and see routing change without a restart, restart and find
// it still there.
func TestSeedFlowThroughAPI(t *testing.T) {
	db := sqlite(t)
	r := startReplica(t, testenv.SeedConfig, db)
	code, out := call(t, "POST", r.base+"/model/new", "sk-admin", testenv.SeedRouter("how to code a program in [language]"))
	if code != 200 {
		t.Fatalf("/model/new: %d %s", code, out)
	}
	var row struct {
		ModelID   string `json:"model_id"`
		ModelInfo struct {
			ID      string `json:"id"`
			DBModel bool   `json:"db_model"`
		} `json:"model_info"`
		Params struct {
			Config string `json:"auto_router_config"`
		} `json:"litellm_params"`
	}
	json.Unmarshal([]byte(out), &row)
	if len(row.ModelID) != 36 || row.ModelInfo.ID != row.ModelID || !row.ModelInfo.DBModel || !strings.Contains(row.Params.Config, "litellm is great") {
		t.Fatalf("stored row %s", out)
	}
	if got := testenv.RouteOf(t, r.base, "how to code a program in python"); got != "litellm-claude-35" {
		t.Fatalf("seed prompt routed to %q", got)
	}
	// Change the coding route's utterance: the prompt moves.
	patch := `{"litellm_params":{"auto_router_config":{"routes":[{"name":"litellm-gpt-4.1","utterances":["how to code a program in [language]"],"score_threshold":0.5},{"name":"litellm-claude-35","utterances":["litellm is great"],"score_threshold":0.5}]}}}`
	// A dry-run update checks the merged row and changes nothing.
	bad := strings.Replace(patch, `"score_threshold":0.5}]`, `"score_threshold":1.5}]`, 1)
	if code, out := call(t, "PATCH", r.base+"/model/"+row.ModelID+"/update?dry_run=true", "sk-admin", bad); code != 400 || !strings.Contains(out, "threshold") {
		t.Fatalf("dry-run update with a bad threshold: %d %s", code, out)
	}
	if code, out := call(t, "PATCH", r.base+"/model/"+row.ModelID+"/update?dry_run=true", "sk-admin", patch); code != 200 || !strings.Contains(out, `"valid":true`) {
		t.Fatalf("dry-run update: %d %s", code, out)
	}
	if got := testenv.RouteOf(t, r.base, "how to code a program in python"); got != "litellm-claude-35" {
		t.Fatalf("a dry-run update moved the prompt to %q", got)
	}
	start := time.Now()
	if code, out := call(t, "PATCH", r.base+"/model/"+row.ModelID+"/update", "sk-admin", patch); code != 200 {
		t.Fatalf("update: %d %s", code, out)
	}
	t.Logf("routing change live %v after the PATCH was sent", time.Since(start))
	if got := testenv.RouteOf(t, r.base, "how to code a program in python"); got != "litellm-gpt-4.1" {
		t.Fatalf("after the update the prompt went to %q", got)
	}
	// Restart: the router comes back from the database.
	r.stop()
	r2 := startReplica(t, testenv.SeedConfig, db)
	if got := testenv.RouteOf(t, r2.base, "how to code a program in python"); got != "litellm-gpt-4.1" {
		t.Fatalf("after a restart the prompt went to %q", got)
	}
	code, out = call(t, "GET", r2.base+"/model/info", "sk-admin", "")
	if code != 200 || !strings.Contains(out, `"model_name":"auto_router1"`) || !strings.Contains(out, `"db_model":true`) || !strings.Contains(out, `"db_model":false`) {
		t.Fatalf("/model/info: %d %s", code, out)
	}
	code, out = call(t, "GET", r2.base+"/v2/model/info?page=1&size=2&search=gpt-", "sk-admin", "")
	var page struct {
		Data        []any
		TotalCount  int `json:"total_count"`
		CurrentPage int `json:"current_page"`
		TotalPages  int `json:"total_pages"`
		Size        int `json:"size"`
	}
	json.Unmarshal([]byte(out), &page)
	if code != 200 || page.TotalCount != 2 || len(page.Data) != 2 || page.TotalPages != 1 || page.Size != 2 {
		t.Fatalf("/v2/model/info: %d %s", code, out)
	}
	if code, out := call(t, "POST", r2.base+"/route", "sk-admin", `{"model":"auto_router1","messages":[{"role":"user","content":"litellm is great"}]}`); code != 200 || !strings.Contains(out, `"route":"litellm-claude-35"`) {
		t.Fatalf("/route on a stored router: %d %s", code, out)
	}
	if code, out := call(t, "POST", r2.base+"/model/delete", "sk-admin", `{"id":"`+row.ModelID+`"}`); code != 200 || !strings.Contains(out, "deleted successfully") {
		t.Fatalf("delete: %d %s", code, out)
	}
	if code, _ := call(t, "POST", r2.base+"/v1/chat/completions", "sk-admin", `{"model":"auto_router1","messages":[{"role":"user","content":"x"}]}`); code != 404 {
		t.Fatalf("a deleted router still answers: %d", code)
	}
}

func TestManagementValidation(t *testing.T) {
	r := startReplica(t, testenv.SeedConfig, sqlite(t))
	body := func(mut func(p map[string]any)) string {
		var b map[string]any
		json.Unmarshal([]byte(testenv.SeedRouter("how to code a program in [language]")), &b)
		mut(b["litellm_params"].(map[string]any))
		out, _ := json.Marshal(b)
		return string(out)
	}
	routes := func(rs string) func(map[string]any) {
		return func(p map[string]any) { p["auto_router_config"] = rs }
	}
	for _, tc := range []struct {
		name, body, want, param string
		status                  int
	}{
		{"threshold out of range", body(routes(`{"routes":[{"name":"litellm-gpt-4.1","utterances":["x"],"score_threshold":1.5}]}`)), `score_threshold 1.5 outside [0,1]`, "litellm_params.auto_router_config.routes.score_threshold", 400},
		{"unknown route model", body(routes(`{"routes":[{"name":"nope","utterances":["x"]}]}`)), `route "nope" has no model_list entry`, "litellm_params.auto_router_config.routes.name", 400},
		{"no utterances", body(routes(`{"routes":[{"name":"litellm-gpt-4.1","utterances":[]}]}`)), `no utterances`, "litellm_params.auto_router_config.routes.utterances", 400},
		{"unknown embedding model", body(func(p map[string]any) { p["auto_router_embedding_model"] = "text-embedding-9" }), `auto_router_embedding_model "text-embedding-9" is not a model_name`, "litellm_params.auto_router_embedding_model", 400},
		{"bad JSON routes", body(routes(`{"routes": [`)), "invalid JSON", "", 400},
		{"name of a config model", `{"model_name":"gpt-4o-mini","litellm_params":{"model":"mock/x"}}`, `is defined in config.yaml`, "model_name", 400},
		{"wrong type", `{"model_name":"x","litellm_params":{"model":"mock/x"},"model_info":{"quantized":"yes"}}`, "want bool", "", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := call(t, "POST", r.base+"/model/new", "sk-admin", tc.body)
			var env struct {
				Error struct{ Message, Param string }
			}
			json.Unmarshal([]byte(out), &env)
			if code != tc.status || !strings.Contains(env.Error.Message, tc.want) || (tc.param != "" && env.Error.Param != tc.param) {
				t.Fatalf("%d %s; want %d with %q (param %q)", code, out, tc.status, tc.want, tc.param)
			}
		})
	}
	// Dry runs check without storing.
	if code, out := call(t, "POST", r.base+"/model/validate", "sk-admin", testenv.SeedRouter("how to code in [language]")); code != 200 || !strings.Contains(out, `"valid":true`) {
		t.Fatalf("validate: %d %s", code, out)
	}
	if code, out := call(t, "GET", r.base+"/model/info", "sk-admin", ""); strings.Contains(out, "auto_router1") {
		t.Fatalf("a dry run stored something: %d %s", code, out)
	}
	// Config models cannot be edited or deleted.
	code, out := call(t, "GET", r.base+"/v1/model/info", "sk-admin", "")
	var list struct {
		Data []struct {
			ModelName string              `json:"model_name"`
			Info      struct{ ID string } `json:"model_info"`
		}
	}
	json.Unmarshal([]byte(out), &list)
	var cfgID string
	for _, d := range list.Data {
		if d.ModelName == "gpt-4o-mini" {
			cfgID = d.Info.ID
		}
	}
	if cfgID == "" {
		t.Fatalf("config model not listed: %d %s", code, out)
	}
	if code, out := call(t, "POST", r.base+"/model/update", "sk-admin", `{"model_info":{"id":"`+cfgID+`"},"litellm_params":{"mock_response":"x"}}`); code != 400 || !strings.Contains(out, "Can't edit model. Model in config.") {
		t.Fatalf("editing a config model: %d %s", code, out)
	}
	if code, out := call(t, "POST", r.base+"/model/delete", "sk-admin", `{"id":"`+cfgID+`"}`); code != 400 || !strings.Contains(out, "Model in config") {
		t.Fatalf("deleting a config model: %d %s", code, out)
	}
	if code, _ := call(t, "POST", r.base+"/model/delete", "sk-admin", `{"id":"no-such-id"}`); code != 404 {
		t.Fatalf("deleting an unknown id: %d", code)
	}
	if code, _ := call(t, "POST", r.base+"/model/new", "", testenv.SeedRouter("x")); code != 401 {
		t.Fatalf("no key: %d", code)
	}
}

// TestManagementOffWithoutKeyOrStore: without a master key the API is
// off and says so; without store_model_in_db it lists but does not write.
func TestManagementOffWithoutKeyOrStore(t *testing.T) {
	base, _, _ := startProxy(t, plainConfig("http://127.0.0.1:1", ""), Options{})
	if code, out := call(t, "GET", base+"/model/info", "", ""); code != 403 || !strings.Contains(out, "master_key") {
		t.Fatalf("no master key: %d %s", code, out)
	}
	r := startReplica(t, strings.Replace(testenv.SeedConfig, "  store_model_in_db: true\n", "", 1), sqlite(t))
	r.manager.SetStore(nil)
	if code, out := call(t, "POST", r.base+"/model/new", "sk-admin", testenv.SeedRouter("x")); code != 400 || !strings.Contains(out, "store_model_in_db") {
		t.Fatalf("store off: %d %s", code, out)
	}
}

// TestSecretsEncryptedAtRest: an upstream key comes back redacted from the
// API, is not in the database file in clear, survives an update that
// sends the redacted value back, and still reaches the upstream.
func TestSecretsEncryptedAtRest(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) { okCompletion(w, "x") })
	db := sqlite(t)
	r := startReplica(t, testenv.SeedConfig, db)
	add := fmt.Sprintf(`{"model_name":"remote","litellm_params":{"model":"openai/gpt-x","api_base":%q,"api_key":"sk-very-secret-upstream"}}`, up.URL)
	code, out := call(t, "POST", r.base+"/model/new", "sk-admin", add)
	if code != 200 || strings.Contains(out, "sk-very-secret") {
		t.Fatalf("add: %d %s", code, out)
	}
	var row struct {
		ModelID string `json:"model_id"`
	}
	json.Unmarshal([]byte(out), &row)
	if _, out := call(t, "GET", r.base+"/model/info", "sk-admin", ""); strings.Contains(out, "sk-very-secret") || !strings.Contains(out, config.Redacted) {
		t.Fatalf("/model/info shows the key: %s", out)
	}
	if code, out := call(t, "PATCH", r.base+"/model/"+row.ModelID+"/update", "sk-admin", `{"litellm_params":{"api_key":"[redacted]","timeout":30}}`); code != 200 {
		t.Fatalf("update: %d %s", code, out)
	}
	call(t, "POST", r.base+"/v1/chat/completions", "sk-admin", `{"model":"remote","messages":[{"role":"user","content":"x"}]}`)
	if got := up.lastAuth.Load(); got != "Bearer sk-very-secret-upstream" {
		t.Fatalf("upstream got auth %v", got)
	}
	r.stop()
	for _, f := range []string{db.Path, db.Path + "-wal"} {
		raw, _ := os.ReadFile(f)
		if strings.Contains(string(raw), "sk-very-secret") {
			t.Fatalf("%s holds the key in clear", f)
		}
	}
	// Another key cannot read it: the model is left out, with why.
	other := db
	other.Secret = "a-different-key"
	r2 := startReplica(t, testenv.SeedConfig, other)
	if _, out := call(t, "GET", r2.base+"/model/info", "sk-admin", ""); !strings.Contains(out, "cannot be decrypted") {
		t.Fatalf("a model whose key cannot be decrypted is not reported: %s", out)
	}
}

// TestConcurrentWritersAndTraffic: writers add and update models through
// the API while clients route requests: every write lands, and no request
// fails.
func TestConcurrentWritersAndTraffic(t *testing.T) {
	r := startReplica(t, testenv.SeedConfig, sqlite(t))
	if code, out := call(t, "POST", r.base+"/model/new", "sk-admin", testenv.SeedRouter("how to code a program in [language]")); code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	stop := traffic(t, 3, func() error {
		if got := testenv.RouteOf(t, r.base, "how to code a program in python"); strings.HasPrefix(got, "status") {
			return fmt.Errorf("request failed during writes: %s", got)
		}
		return nil
	})
	var writes sync.WaitGroup
	for i := range 6 {
		writes.Add(1)
		go func() {
			defer writes.Done()
			code, out := call(t, "POST", r.base+"/model/new", "sk-admin", fmt.Sprintf(`{"model_name":"extra-%d","litellm_params":{"model":"mock/x%d"}}`, i, i))
			if code != 200 {
				t.Errorf("write %d: %d %s", i, code, out)
			}
		}()
	}
	writes.Wait()
	served := stop()
	_, out := call(t, "GET", r.base+"/v2/model/info?search=extra-", "sk-admin", "")
	if !strings.Contains(out, `"total_count":6`) {
		t.Fatalf("not every concurrent write landed: %s", out)
	}
	if served == 0 {
		t.Fatal("no request served during the writes")
	}
}
