package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/config"
	"github.com/autorouter/autorouter/router/manage"
	"github.com/autorouter/autorouter/router/store"
)

// SetManager turns on the model management API (/model/new and the rest)
// backed by m.
func (s *Server) SetManager(m *manage.Manager) { s.manager.Store(m) }

// isManagement reports whether path belongs to the model management API.
func isManagement(path string) bool {
	return strings.HasPrefix(path, "/model/") || path == "/v1/model/info" || path == "/v2/model/info"
}

// manage serves LiteLLM's model management API. It needs the master key;
// without general_settings.master_key the API is off.
func (s *Server) manage(ctx *fasthttp.RequestCtx, snap *router.Snapshot, path string) {
	defer snap.Release()
	start := time.Now()
	status := 200
	defer func() {
		s.metrics.request("/model", "none", "", status, time.Since(start))
	}()
	fail := func(err error) { status = writeError(ctx, err).status }
	if len(snap.MasterKey()) == 0 {
		fail(&apiError{status: 403, typ: "permission_error", code: "management_off",
			msg: "the model management API is off: set general_settings.master_key (and store_model_in_db: true to store models)"})
		return
	}
	m := s.manager.Load()
	if m == nil {
		fail(&apiError{status: 503, typ: "service_unavailable", code: "loading", retryAfter: 1, msg: "the model management API is still starting; retry shortly"})
		return
	}
	method := string(ctx.Method())
	by := "admin"
	// Writes outlive a client that hangs up: a half-done write is worse
	// than a finished one nobody reads.
	opCtx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	switch {
	case method == "GET" && (path == "/model/info" || path == "/v1/model/info"):
		id := string(ctx.QueryArgs().Peek("litellm_model_id"))
		var data []map[string]any
		for _, e := range m.List() {
			if id == "" || e.Deployment.ModelInfo.ID == id {
				data = append(data, entryJSON(e, snap))
			}
		}
		if data == nil {
			data = []map[string]any{}
		}
		writeJSON(ctx, 200, map[string]any{"data": data})
	case method == "GET" && path == "/v2/model/info":
		s.modelInfoV2(ctx, m, snap, fail)
	case method == "POST" && (path == "/model/new" || path == "/model/validate"):
		var in manage.Input
		if err := decodeStrict(ctx.PostBody(), &in); err != nil {
			fail(err)
			return
		}
		dry := path == "/model/validate" || string(ctx.QueryArgs().Peek("dry_run")) == "true"
		row, err := m.Add(opCtx, in, by, dry)
		if err != nil {
			fail(manageError(err))
			return
		}
		if dry {
			writeJSON(ctx, 200, map[string]any{"valid": true, "model_name": in.ModelName, "message": "valid: nothing was stored"})
			return
		}
		writeJSON(ctx, 200, rowJSON(row))
	case (method == "PATCH" || method == "POST") && strings.HasPrefix(path, "/model/") && strings.HasSuffix(path, "/update") && path != "/model/update":
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/model/"), "/update")
		s.updateModel(opCtx, ctx, m, id, ctx.PostBody(), by, fail)
	case method == "POST" && path == "/model/update":
		var body struct {
			Info struct {
				ID string `json:"id"`
			} `json:"model_info"`
		}
		if err := json.Unmarshal(ctx.PostBody(), &body); err != nil || body.Info.ID == "" {
			fail(badRequest("model_info.id", "/model/update needs model_info.id, the id of the model to update (see /model/info)"))
			return
		}
		s.updateModel(opCtx, ctx, m, body.Info.ID, ctx.PostBody(), by, fail)
	case method == "POST" && path == "/model/delete":
		var body struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(ctx.PostBody(), &body); err != nil || body.ID == "" {
			fail(badRequest("id", `/model/delete needs {"id": "<model id>"} (see /model/info)`))
			return
		}
		if err := m.Delete(opCtx, body.ID, by); err != nil {
			fail(manageError(err))
			return
		}
		writeJSON(ctx, 200, map[string]any{"message": fmt.Sprintf("Model: %s deleted successfully", body.ID)})
	default:
		fail(&apiError{status: 404, typ: "invalid_request_error", code: "not_found",
			msg: fmt.Sprintf("no endpoint %s %s; the model API has POST /model/new, POST /model/validate, PATCH /model/{id}/update, POST /model/update, POST /model/delete, GET /model/info, GET /v2/model/info", method, path)})
	}
}

func (s *Server) updateModel(opCtx context.Context, ctx *fasthttp.RequestCtx, m *manage.Manager, id string, body []byte, by string, fail func(error)) {
	var p manage.Patch
	if err := json.Unmarshal(body, &p); err != nil {
		fail(badRequest("", "request body is not a valid model update: %v", err))
		return
	}
	dry := string(ctx.QueryArgs().Peek("dry_run")) == "true"
	row, err := m.Update(opCtx, id, p, by, dry)
	if err != nil {
		fail(manageError(err))
		return
	}
	if dry {
		writeJSON(ctx, 200, map[string]any{"valid": true, "model_name": row.ModelName, "message": "valid: nothing was stored"})
		return
	}
	writeJSON(ctx, 200, rowJSON(row))
}

// modelInfoV2 is /v2/model/info: LiteLLM's paged, searchable list.
func (s *Server) modelInfoV2(ctx *fasthttp.RequestCtx, m *manage.Manager, snap *router.Snapshot, fail func(error)) {
	args := ctx.QueryArgs()
	page, size := 1, 50
	if v := args.Peek("page"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 {
			fail(badRequest("page", "page must be a whole number from 1"))
			return
		}
		page = n
	}
	if v := args.Peek("size"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > 1000 {
			fail(badRequest("size", "size must be a whole number from 1 to 1000"))
			return
		}
		size = n
	}
	search := strings.ToLower(string(args.Peek("search")))
	var all []map[string]any
	for _, e := range m.List() {
		if search == "" || strings.Contains(strings.ToLower(e.Deployment.ModelName), search) {
			all = append(all, entryJSON(e, snap))
		}
	}
	total := len(all)
	pages := (total + size - 1) / size
	from := min((page-1)*size, total)
	data := all[from:min(from+size, total)]
	if data == nil {
		data = []map[string]any{}
	}
	writeJSON(ctx, 200, map[string]any{"data": data, "total_count": total, "current_page": page, "total_pages": pages, "size": size})
}

// entryJSON is one deployment in LiteLLM's /model/info shape, secrets
// redacted, plus where it comes from and its health.
func entryJSON(e manage.Entry, snap *router.Snapshot) map[string]any {
	d := e.Deployment
	info := map[string]any{}
	b, _ := json.Marshal(d.ModelInfo)
	_ = json.Unmarshal(b, &info)
	info["id"] = d.ModelInfo.ID
	info["db_model"] = d.Source == config.SourceDB
	info["source"] = d.Source
	if e.Err != nil {
		info["error"] = e.Err.Error()
	}
	cooling := false
	for _, dep := range snap.Pool().Deployments(d.ModelName) {
		if dep.ID == d.ModelInfo.ID && dep.CoolingDown() {
			cooling = true
		}
	}
	info["cooling_down"] = cooling
	out := map[string]any{"model_name": d.ModelName, "litellm_params": d.Params, "model_info": info}
	if e.Row != nil {
		out["created_at"], out["updated_at"] = e.Row.CreatedAt, e.Row.UpdatedAt
		out["created_by"], out["updated_by"] = e.Row.CreatedBy, e.Row.UpdatedBy
	}
	return out
}

// rowJSON is a stored row as /model/new answers it: LiteLLM's
// LiteLLM_ProxyModelTable row, secrets redacted.
func rowJSON(r store.Row) map[string]any {
	info := map[string]any{}
	b, _ := json.Marshal(r.Info)
	_ = json.Unmarshal(b, &info)
	info["id"], info["db_model"] = r.ID, true
	return map[string]any{"model_id": r.ID, "model_name": r.ModelName, "litellm_params": r.Params, "model_info": info,
		"created_at": r.CreatedAt, "created_by": r.CreatedBy, "updated_at": r.UpdatedAt, "updated_by": r.UpdatedBy}
}

// decodeStrict decodes a management body, with errors naming the field.
func decodeStrict(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return badRequest(te.Field, "%s: cannot use a JSON %s here, want %s", te.Field, te.Value, te.Type)
		}
		return badRequest("", "request body is not a valid model: %v", err)
	}
	return nil
}

// manageError maps the management plane's errors to HTTP.
func manageError(err error) error {
	switch {
	case errors.Is(err, manage.ErrInvalid):
		return &apiError{status: 400, typ: "invalid_request_error", param: paramOf(err.Error()), code: "invalid_model", msg: strings.TrimPrefix(err.Error(), manage.ErrInvalid.Error()+": ")}
	case errors.Is(err, manage.ErrInConfig):
		return &apiError{status: 400, typ: "invalid_request_error", code: "model_in_config", msg: strings.TrimPrefix(err.Error(), manage.ErrInConfig.Error()+": ")}
	case errors.Is(err, manage.ErrNotFound):
		return &apiError{status: 404, typ: "invalid_request_error", param: "id", code: "model_not_found", msg: strings.TrimPrefix(err.Error(), manage.ErrNotFound.Error()+": ")}
	case errors.Is(err, manage.ErrNoStore):
		return &apiError{status: 400, typ: "invalid_request_error", code: "store_model_in_db_off", msg: strings.TrimPrefix(err.Error(), manage.ErrNoStore.Error()+": ")}
	case errors.Is(err, manage.ErrStore):
		return &apiError{status: 503, typ: "service_unavailable", code: "database_unavailable", retryAfter: 2, msg: err.Error()}
	}
	return err
}

// paramOf names the field a validation message is about, so that a form
// can show the message beside it.
func paramOf(msg string) string {
	for _, f := range []struct{ needle, param string }{
		{"score_threshold", "litellm_params.auto_router_config.routes.score_threshold"},
		{"no utterances", "litellm_params.auto_router_config.routes.utterances"},
		{"utterances[", "litellm_params.auto_router_config.routes.utterances"},
		{"auto_router_default_model", "litellm_params.auto_router_default_model"},
		{"auto_router_embedding_model", "litellm_params.auto_router_embedding_model"},
		{"embedding model", "litellm_params.auto_router_embedding_model"},
		{"has no model_list entry", "litellm_params.auto_router_config.routes.name"},
		{"cannot answer chat requests", "litellm_params.auto_router_config.routes.name"},
		{"appears twice", "litellm_params.auto_router_config.routes.name"},
		{"no routes", "litellm_params.auto_router_config.routes"},
		{"auto_router_config", "litellm_params.auto_router_config"},
		{"api_base", "litellm_params.api_base"},
		{"litellm_params.model", "litellm_params.model"},
		{"model_name", "model_name"},
		{"two entries with this name", "model_name"},
		{"model_info.", "model_info"},
	} {
		if strings.Contains(msg, f.needle) {
			return f.param
		}
	}
	return ""
}
