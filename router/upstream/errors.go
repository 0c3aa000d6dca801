package upstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

// Errors a call can end with, for errors.Is. A proxy maps them to an HTTP
// status at its edge: ErrTimeout to 504, ErrCoolingDown and ErrNoFreeConns
// to 503, the rest to 502.
var (
	// ErrTimeout means an attempt's deadline passed: timeout for a whole
	// non-streaming call, stream_timeout while waiting for a stream.
	ErrTimeout = errors.New("upstream: timed out (litellm_params.timeout / stream_timeout)")
	// ErrTooLarge means a non-streaming answer exceeded the size limit
	// (general_settings.max_response_size_mb).
	ErrTooLarge = errors.New("upstream: answer larger than the limit (general_settings.max_response_size_mb)")
	// ErrNoFreeConns means autorouter's own connection pool to the host was
	// full for the whole wait. It is not held against the deployment.
	ErrNoFreeConns = errors.New("upstream: no free connection to the host within 10s (too many requests in flight to it)")
	// ErrCoolingDown means every deployment of the group is on cooldown
	// after repeated failures and a probe request is already testing one.
	ErrCoolingDown = errors.New("upstream: every deployment is cooling down after repeated failures")
	// ErrNoDeployment means the model group has no deployment that can
	// answer this API.
	ErrNoDeployment = errors.New("upstream: no deployment for this model")
	// ErrFailed means the upstream answered with a retryable error status
	// (429 or 5xx) on every attempt.
	ErrFailed = errors.New("upstream: failed")
)

// Error is why a call failed after its retries and fallbacks. Its message
// holds no request content and no upstream text; the upstream's own error
// message, which may quote the request, is in UpstreamMessage for the
// client alone.
type Error struct {
	// Model is the model group the call was for.
	Model string
	// Attempts is how many upstream attempts were made.
	Attempts int
	// Status is the last upstream HTTP status, 0 when none answered.
	Status int
	// UpstreamMessage is the last upstream error message, cut to 300 bytes.
	UpstreamMessage string
	// Err is the last attempt's error; errors.Is sees through it.
	Err error
}

func (e *Error) Error() string {
	return fmt.Sprintf("upstream for model %q failed after %d attempt(s) and its fallbacks: %v", e.Model, e.Attempts, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// statusError is one attempt answered with a retryable status.
type statusError struct {
	deployment string
	status     int
	msg        string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("deployment %s answered %d", e.deployment, e.status)
}

func (e *statusError) Unwrap() error { return ErrFailed }

// isTimeout reports whether err is a deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ErrTimeout) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// errorAnswer is an upstream error answer: its body (to pass through, up
// to maxErrorBody) and its message (for the client's error).
type errorAnswer struct {
	raw []byte
	msg string
}

// readErrorAnswer reads an error body and pulls out its message: OpenAI's
// and Anthropic's {"error":{"message":...}}, else the text itself, cut to
// 300 bytes.
func readErrorAnswer(r io.Reader) errorAnswer {
	raw, _ := io.ReadAll(io.LimitReader(r, maxErrorBody))
	var env struct {
		Error json.RawMessage `json:"error"`
	}
	msg := ""
	if json.Unmarshal(raw, &env) == nil && len(env.Error) > 0 {
		var inner struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(env.Error, &inner) == nil && inner.Message != "" {
			msg = inner.Message
		} else if json.Unmarshal(env.Error, &msg) != nil {
			msg = ""
		}
	}
	if msg == "" {
		msg = string(bytes.TrimSpace(raw))
	}
	if len(msg) > 300 {
		cut := 300
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "..."
	}
	return errorAnswer{raw: raw, msg: msg}
}
