package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/openai"
	"github.com/autorouter/autorouter/router/upstream"
)

// apiError is an error with the HTTP status and OpenAI error type it maps
// to at the handler edge. msg is what the client reads; it never holds a
// key, and request content only where the client sent it.
type apiError struct {
	status int
	typ    string
	param  string
	code   string
	msg    string
	// retryAfter, in seconds, is sent as Retry-After when positive.
	retryAfter int
}

func (e *apiError) Error() string { return e.msg }

func badRequest(param, format string, args ...any) *apiError {
	return &apiError{status: 400, typ: "invalid_request_error", param: param, msg: fmt.Sprintf(format, args...)}
}

// errClientGone marks a request whose client left; nothing is written.
var errClientGone = errors.New("client went away")

// toAPIError maps an error from the library to its status, here at the
// edge and nowhere else.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var fe *openai.FieldError
	if errors.As(err, &fe) {
		return badRequest(fe.Param, "%s", fe.Error())
	}
	var ue *upstream.Error
	upstreamMsg := ""
	if errors.As(err, &ue) && ue.UpstreamMessage != "" {
		upstreamMsg = " (upstream said: " + ue.UpstreamMessage + ")"
	}
	switch {
	case errors.Is(err, errClientGone) || errors.Is(err, context.Canceled):
		return &apiError{status: 499, typ: "client_closed_request", msg: "the client closed the request"}
	case errors.Is(err, router.ErrUnknownModel):
		return &apiError{status: 404, typ: "invalid_request_error", param: "model", code: "model_not_found", msg: err.Error()}
	case errors.Is(err, upstream.ErrBadRequest):
		var fe *openai.FieldError
		if errors.As(err, &fe) {
			return badRequest(fe.Param, "%s", fe.Error())
		}
		return badRequest("model", "%s", err.Error())
	case errors.Is(err, router.ErrWrongAPI):
		return badRequest("model", "%s", err.Error())
	case errors.Is(err, upstream.ErrTimeout) || errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: 504, typ: "timeout", code: "upstream_timeout", msg: err.Error() + upstreamMsg}
	case errors.Is(err, upstream.ErrCoolingDown):
		return &apiError{status: 503, typ: "service_unavailable", code: "cooling_down", msg: err.Error(), retryAfter: 1}
	case errors.Is(err, upstream.ErrNoFreeConns):
		return &apiError{status: 503, typ: "service_unavailable", code: "no_free_connections", msg: err.Error(), retryAfter: 1}
	case errors.Is(err, upstream.ErrTooLarge):
		return &apiError{status: 502, typ: "upstream_error", code: "response_too_large", msg: err.Error()}
	case ue != nil:
		return &apiError{status: 502, typ: "upstream_error", code: "upstream_error", msg: err.Error() + upstreamMsg}
	}
	return &apiError{status: 500, typ: "internal_error", msg: "internal error: " + err.Error()}
}

// writeError writes err as OpenAI's error envelope.
func writeError(ctx *fasthttp.RequestCtx, err error) *apiError {
	ae := toAPIError(err)
	if ae.status == 499 {
		ctx.SetStatusCode(499)
		ctx.SetConnectionClose()
		return ae
	}
	body := openai.ErrorEnvelope{Error: openai.ErrorBody{Message: ae.msg, Type: ae.typ}}
	if ae.param != "" {
		body.Error.Param = &ae.param
	}
	if ae.code != "" {
		body.Error.Code = &ae.code
	}
	ctx.Response.ResetBody()
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetStatusCode(ae.status)
	if ae.retryAfter > 0 {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(ae.retryAfter))
	}
	b, _ := json.Marshal(body)
	ctx.SetBody(b)
	return ae
}

// writeAnthropicError writes err in Anthropic's error envelope, for the
// Messages API's clients: {"type":"error","error":{"type","message"}}.
func writeAnthropicError(ctx *fasthttp.RequestCtx, err error) *apiError {
	ae := toAPIError(err)
	if ae.status == 499 {
		ctx.SetStatusCode(499)
		ctx.SetConnectionClose()
		return ae
	}
	typ := "api_error"
	switch ae.status {
	case 400, 413:
		typ = "invalid_request_error"
	case 401:
		typ = "authentication_error"
	case 403:
		typ = "permission_error"
	case 404:
		typ = "not_found_error"
	case 429:
		typ = "rate_limit_error"
	case 503, 529:
		typ = "overloaded_error"
	}
	msg := ae.msg
	if ae.param != "" && !strings.HasPrefix(msg, ae.param) {
		msg = ae.param + ": " + msg
	}
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": msg}})
	ctx.Response.ResetBody()
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetStatusCode(ae.status)
	if ae.retryAfter > 0 {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(ae.retryAfter))
	}
	ctx.SetBody(b)
	return ae
}
