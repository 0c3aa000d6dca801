package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/autorouter/autorouter/router/internal/testenv"
	"github.com/autorouter/autorouter/router/store"
)

// TestReplicasShareRoutersThroughPostgres runs two replicas on one
// Postgres: a router added through A routes on B within 2 s, a change on
// B reaches A, and a delete on B takes effect on A.
func TestReplicasShareRoutersThroughPostgres(t *testing.T) {
	db := store.Options{URL: testenv.PostgresDB(t), Secret: "sk-admin"}
	a := startReplica(t, testenv.SeedConfig, db)
	b := startReplica(t, testenv.SeedConfig, db)
	if code, out := call(t, "POST", a.base+"/model/new", "sk-admin", testenv.SeedRouter("how to code a program in [language]")); code != 200 {
		t.Fatalf("add on A: %d %s", code, out)
	}
	took := testenv.WaitFor(t, "router added on A routing on B", func() bool {
		return testenv.RouteOf(t, b.base, "how to code a program in python") == "litellm-claude-35"
	})
	t.Logf("replica B routed with the router added on A after %v", took)
	if took > 2*time.Second {
		t.Fatalf("convergence took %v, want within 2 s", took)
	}
	_, out := call(t, "GET", b.base+"/model/info", "sk-admin", "")
	id := between(out, `"model_info":{"cooling_down":false,"db_model":true,"id":"`, `"`)
	if id == "" {
		t.Fatalf("no stored model on B: %s", out)
	}
	patch := `{"litellm_params":{"auto_router_config":"{\"routes\":[{\"name\":\"litellm-gpt-4.1\",\"utterances\":[\"how to code a program in [language]\"],\"score_threshold\":0.5}]}"}}`
	if code, out := call(t, "PATCH", b.base+"/model/"+id+"/update", "sk-admin", patch); code != 200 {
		t.Fatalf("update on B: %d %s", code, out)
	}
	took = testenv.WaitFor(t, "update on B reaching A", func() bool {
		return testenv.RouteOf(t, a.base, "how to code a program in python") == "litellm-gpt-4.1"
	})
	t.Logf("replica A routed with B's update after %v", took)
	if code, out := call(t, "POST", b.base+"/model/delete", "sk-admin", `{"id":"`+id+`"}`); code != 200 {
		t.Fatalf("delete on B: %d %s", code, out)
	}
	testenv.WaitFor(t, "delete on B reaching A", func() bool {
		code, _ := call(t, "POST", a.base+"/route", "sk-admin", `{"model":"auto_router1","messages":[{"role":"user","content":"x"}]}`)
		return code == 400
	})
}

func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i+len(from):]
	j := strings.Index(s, to)
	if j < 0 {
		return ""
	}
	return s[:j]
}

// TestCooldownSharedThroughRedis: a deployment that replica A puts on
// cooldown is skipped by replica B too.
func TestCooldownSharedThroughRedis(t *testing.T) {
	redisURL := testenv.Service(t, "AUTOROUTER_TEST_REDIS_URL")
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) { http.Error(w, "down", 500) })
	cfg := fmt.Sprintf(`
model_list:
  - model_name: flaky
    litellm_params: {model: openai/x, api_base: %s/v1}
    model_info: {id: flaky-1}
router_settings:
  num_retries: 0
  allowed_fails: 0
  cooldown_time: 60
  redis_url: %s
general_settings:
  master_key: sk-admin
`, up.URL, redisURL)
	a := startReplica(t, cfg, sqlite(t))
	b := startReplica(t, cfg, sqlite(t))
	if code, _ := call(t, "POST", a.base+"/v1/chat/completions", "sk-admin", `{"model":"flaky","messages":[{"role":"user","content":"x"}]}`); code != 502 {
		t.Fatalf("A: %d", code)
	}
	took := testenv.WaitFor(t, "B learning A's cooldown", func() bool {
		snap := b.client.Acquire()
		defer snap.Release()
		for _, d := range snap.Pool().Deployments("flaky") {
			if d.ID == "flaky-1" && d.CoolingDown() {
				return true
			}
		}
		return false
	})
	t.Logf("replica B honoured A's cooldown after %v", took)
	calls := up.calls.Load()
	code, out := call(t, "POST", b.base+"/v1/chat/completions", "sk-admin", `{"model":"flaky","messages":[{"role":"user","content":"x"}]}`)
	if up.calls.Load() > calls+1 || (code != 503 && code != 502) {
		t.Fatalf("B sent %d calls to a deployment A cooled down: %d %s", up.calls.Load()-calls, code, out)
	}
}
