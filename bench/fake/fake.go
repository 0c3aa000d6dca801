// Package fake is a fast local stand-in for an OpenAI-compatible provider,
// the upstream every proxy in the bench harness forwards to. Its latency,
// response size and stream chunking are configurable so that runs can model
// a quick or a slow provider. A request whose model is one of the fault
// names (fault-500, fault-hang, ...; see faults.go) gets that misbehaviour
// instead, so one fake process serves the reliability attacks too.
package fake

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Options shape the fake's answers.
type Options struct {
	// Latency is how long the fake waits before answering (before the first
	// byte of a stream).
	Latency time.Duration
	// ContentBytes is the length of the assistant message.
	ContentBytes int
	// Chunks is how many content events a stream carries.
	Chunks int
	// ChunkDelay is the pause between stream events.
	ChunkDelay time.Duration

	// FaultEvery is the pause between the events of the paced fault
	// streams (fault-slowstream, fault-pace); 0 means 400 ms.
	FaultEvery time.Duration
	// FaultEvents is how many content events a paced fault stream sends
	// before it finishes; 0 means 10 (4 s at the default pace).
	FaultEvents int
	// HugeBytes is the size of the fault-huge answers; 0 means 80 MB.
	HugeBytes int
}

// Validate reports options that cannot produce a response.
func (o Options) Validate() error {
	switch {
	case o.Latency < 0 || o.ChunkDelay < 0 || o.FaultEvery < 0:
		return fmt.Errorf("fake upstream: latency %v, chunk delay %v and fault pace %v must not be negative", o.Latency, o.ChunkDelay, o.FaultEvery)
	case o.FaultEvents < 0 || o.HugeBytes < 0:
		return fmt.Errorf("fake upstream: fault events %d and huge answer size %d must not be negative", o.FaultEvents, o.HugeBytes)
	case o.ContentBytes < 1:
		return fmt.Errorf("fake upstream: content size %d must be at least 1 byte", o.ContentBytes)
	case o.Chunks < 1 || o.Chunks > o.ContentBytes:
		return fmt.Errorf("fake upstream: chunks %d must be in [1, content size %d]", o.Chunks, o.ContentBytes)
	}
	return nil
}

// Server answers POST /v1/chat/completions (and /chat/completions) like an
// OpenAI provider, and GET /health with 200. GET /faults reports what the
// fault modes saw (Stats) and POST /faults/reset forgets it.
type Server struct {
	opts   Options
	chunks []string // stream content pieces, JSON-escaped
	body   string   // non-stream body with %s for the model
	faults faultLog
}

// New prepares a server with opts.
func New(opts Options) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	content := strings.Repeat("lorem ipsum ", opts.ContentBytes/12+1)[:opts.ContentBytes]
	if opts.FaultEvery == 0 {
		opts.FaultEvery = 400 * time.Millisecond
	}
	if opts.FaultEvents == 0 {
		opts.FaultEvents = 10
	}
	if opts.HugeBytes == 0 {
		opts.HugeBytes = 80 << 20
	}
	s := &Server{opts: opts}
	s.faults.reset()
	per := len(content) / opts.Chunks
	for i := range opts.Chunks {
		end := (i + 1) * per
		if i == opts.Chunks-1 {
			end = len(content)
		}
		s.chunks = append(s.chunks, content[i*per:end])
	}
	s.body = `{"id":"chatcmpl-fake","object":"chat.completion","created":1700000000,"model":%s,` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"` + content + `"},"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":8,"completion_tokens":` + fmt.Sprint(opts.ContentBytes/4+1) + `,"total_tokens":` + fmt.Sprint(opts.ContentBytes/4+9) + `}}`
	return s, nil
}

// request is the part of a chat request the fake looks at.
type request struct {
	Model  string `json:"model"`
	Stream bool   `json:"stream"`
	// User tags a fault request so that its connection's fate can be
	// looked up in Stats (OpenAI's end-user id field, which proxies
	// forward unchanged).
	User string `json:"user"`
}

// Handle is the fasthttp handler.
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	switch {
	case path == "/health":
		ctx.SetBodyString("ok")
		return
	case path == "/faults" && ctx.IsGet():
		ctx.SetContentType("application/json")
		ctx.SetBody(s.faults.stats())
		return
	case path == "/faults/reset" && ctx.IsPost():
		s.faults.reset()
		ctx.SetBodyString("ok")
		return
	case path != "/v1/chat/completions" && path != "/chat/completions":
		ctx.Error(`{"error":{"message":"not found","type":"invalid_request_error"}}`, fasthttp.StatusNotFound)
		return
	case !ctx.IsPost():
		ctx.Error(`{"error":{"message":"use POST","type":"invalid_request_error"}}`, fasthttp.StatusMethodNotAllowed)
		return
	}
	var req request
	if err := json.Unmarshal(ctx.PostBody(), &req); err != nil || req.Model == "" {
		ctx.SetContentType("application/json")
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		ctx.SetBodyString(`{"error":{"message":"body must be a JSON chat request with a model","type":"invalid_request_error"}}`)
		return
	}
	if f, ok := faults[req.Model]; ok {
		s.fault(ctx, f, &req)
		return
	}
	model, _ := json.Marshal(req.Model)
	if s.opts.Latency > 0 {
		time.Sleep(s.opts.Latency)
	}
	if !req.Stream {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(fmt.Sprintf(s.body, model))
		return
	}
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		head := `data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1700000000,"model":` + string(model) + `,"choices":[{"index":0,"delta":{`
		for i, c := range s.chunks {
			if i > 0 && s.opts.ChunkDelay > 0 {
				time.Sleep(s.opts.ChunkDelay)
			}
			role := ""
			if i == 0 {
				role = `"role":"assistant",`
			}
			fmt.Fprintf(w, "%s%s\"content\":%q},\"finish_reason\":null}]}\n\n", head, role, c)
			if err := w.Flush(); err != nil {
				return // the client went away
			}
		}
		fmt.Fprintf(w, "%s},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n", head)
		_ = w.Flush()
	})
}

// Server returns a fasthttp server for s.
func (s *Server) Server() *fasthttp.Server {
	return &fasthttp.Server{Handler: s.Handle, Name: "fake-openai", NoDefaultDate: true, ReadTimeout: time.Minute}
}
