package proxy

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/autorouter/autorouter/router/openai"
)

// apiError is an error with the HTTP status and OpenAI error type it maps
// to at the handler edge.
type apiError struct {
	status int
	typ    string
	param  string
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(param, format string, args ...any) *apiError {
	return &apiError{status: 400, typ: "invalid_request_error", param: param, msg: fmt.Sprintf(format, args...)}
}

// writeError writes err as OpenAI's error envelope. Errors that are not
// apiErrors become 500s.
func writeError(ctx *fasthttp.RequestCtx, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{status: 500, typ: "internal_error", msg: err.Error()}
	}
	body := openai.ErrorEnvelope{Error: openai.ErrorBody{Message: ae.msg, Type: ae.typ}}
	if ae.param != "" {
		body.Error.Param = &ae.param
	}
	if ae.code != "" {
		body.Error.Code = &ae.code
	}
	b, _ := json.Marshal(body)
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetStatusCode(ae.status)
	ctx.SetBody(b)
}
