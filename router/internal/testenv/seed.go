package testenv

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// SeedMasterKey is SeedConfig's master key.
const SeedMasterKey = "sk-admin"

// SeedConfig is the seed's setup as config.yaml: its target models as
// mocks, the local encoder, a master key, and models stored in the
// database; routers are added through the management API or the page.
const SeedConfig = `
model_list:
  - model_name: custom-text-embedding-model
    litellm_params: {model: local/all-MiniLM-L6-v2}
    model_info: {quantized: true}
  - model_name: litellm-gpt-4.1
    litellm_params: {model: mock/gpt-4.1, mock_response: "gpt-4.1 here"}
  - model_name: litellm-claude-35
    litellm_params: {model: mock/claude-3-5, mock_response: "claude here"}
  - model_name: gpt-4o-mini
    litellm_params: {model: mock/gpt-4o-mini, mock_response: "mini here"}
general_settings:
  master_key: sk-admin
  store_model_in_db: true
`

// SeedRouter is the body of LiteLLM's "Add Model > Auto Router" for the
// seed's auto_router1, auto_router_config as a JSON string as LiteLLM's
// UI sends it, with coding as the coding route's one utterance.
func SeedRouter(coding string) string {
	routes := fmt.Sprintf(`{"routes":[{"name":"litellm-gpt-4.1","utterances":["litellm is great"],"description":"positive affirmation","score_threshold":0.5},{"name":"litellm-claude-35","utterances":[%q],"description":"coding assistant","score_threshold":0.5}]}`, coding)
	b, _ := json.Marshal(map[string]any{
		"model_name": "auto_router1",
		"litellm_params": map[string]any{"model": "auto_router/auto_router1", "auto_router_config": routes,
			"auto_router_default_model": "gpt-4o-mini", "auto_router_embedding_model": "custom-text-embedding-model"},
		"model_info": map[string]any{},
	})
	return string(b)
}

// Send makes one request with key as its bearer token ("" for none) and a
// JSON body, and reads the whole answer.
func Send(tb testing.TB, method, url, key, body string) (*http.Response, string) {
	tb.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// RouteOf sends prompt to auto_router1 as a real chat request with the
// seed's master key and returns the x-autorouter-route header, or
// "status N" when the request failed.
func RouteOf(tb testing.TB, base, prompt string) string {
	tb.Helper()
	resp, _ := Send(tb, "POST", base+"/v1/chat/completions", SeedMasterKey,
		fmt.Sprintf(`{"model":"auto_router1","messages":[{"role":"user","content":%q}]}`, prompt))
	if resp.StatusCode != 200 {
		return fmt.Sprintf("status %d", resp.StatusCode)
	}
	return resp.Header.Get("x-autorouter-route")
}
