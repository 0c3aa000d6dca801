package proxy

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/autorouter/autorouter/embed"
	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/openai"
	"github.com/autorouter/autorouter/router/upstream"
)

// embeddings serves local embedding models in-process (an OpenAI-compatible
// embedding server) and proxies remote ones. Local work is bounded three
// ways: inputs per request, tokens per request, and requests running at
// once, with a short queue and then 429.
func (s *Server) embeddings(ctx *fasthttp.RequestCtx, snap *router.Snapshot) {
	rs, ok := s.beginBody(ctx, snap, "/v1/embeddings", upstream.Embeddings)
	if !ok {
		return
	}
	if !snap.IsLocal(rs.body.Model) {
		resp, _, err := snap.Call(rs.ctx, upstream.Embeddings, &rs.body)
		if err != nil {
			rs.fail(err)
			return
		}
		rs.respond(resp)
		return
	}
	var req openai.EmbeddingRequest
	if err := json.Unmarshal(ctx.PostBody(), &req); err != nil {
		rs.fail(badRequest("", "request body is not a valid embeddings request: %v", err))
		return
	}
	inputs, err := openai.EmbeddingInputs(req.Input)
	if err != nil {
		rs.fail(badRequest("input", "%s (token arrays are not supported by local models)", err.Error()))
		return
	}
	lim := s.limits
	if len(inputs) > lim.MaxEmbeddingInputs {
		rs.fail(badRequest("input", "%d inputs, more than the limit of %d per request (general_settings.max_embedding_inputs); split the request", len(inputs), lim.MaxEmbeddingInputs))
		return
	}
	for i, in := range inputs {
		if in == "" {
			rs.fail(badRequest("input", "input[%d] is empty; every input must be a non-empty string", i))
			return
		}
	}
	enc, err := snap.Encoder(rs.body.Model)
	if err != nil {
		rs.fail(err)
		return
	}
	if req.Dimensions != 0 && req.Dimensions != enc.Dim() {
		rs.fail(badRequest("dimensions", "model %q makes %d-dimensional vectors and cannot shorten them; leave dimensions out", rs.body.Model, enc.Dim()))
		return
	}
	tokens := 0
	for _, in := range inputs {
		if tc, ok := enc.(embed.TokenCounter); ok {
			tokens += tc.CountTokens(in)
		} else {
			tokens += len(in)/4 + 2
		}
		if tokens > lim.MaxEmbeddingTokens {
			rs.fail(badRequest("input", "the inputs hold more than %d tokens, the limit per request (general_settings.max_embedding_tokens); split the request", lim.MaxEmbeddingTokens))
			return
		}
	}
	if err := s.embedSlot(rs); err != nil {
		rs.fail(err)
		return
	}
	dim := enc.Dim()
	vecs := make([]float32, len(inputs)*dim)
	err = enc.Embed(rs.ctx, inputs, vecs)
	<-s.embedSlots
	if err != nil {
		rs.fail(err)
		return
	}
	out := ctx.Response.BodyWriter()
	buf := make([]byte, 0, 64+len(inputs)*(dim*11+48))
	buf = append(buf, `{"object":"list","model":`...)
	buf = openai.AppendString(buf, rs.body.Model)
	buf = append(buf, `,"data":[`...)
	raw := make([]byte, 4*dim)
	for i := range inputs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"object":"embedding","index":`...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, `,"embedding":`...)
		v := vecs[i*dim : (i+1)*dim]
		if req.EncodingFormat == "base64" {
			for k, x := range v {
				binary.LittleEndian.PutUint32(raw[4*k:], math.Float32bits(x))
			}
			buf = append(buf, '"')
			buf = base64.StdEncoding.AppendEncode(buf, raw)
			buf = append(buf, '"')
		} else {
			buf = append(buf, '[')
			for k, x := range v {
				if k > 0 {
					buf = append(buf, ',')
				}
				buf = strconv.AppendFloat(buf, float64(x), 'g', -1, 32)
			}
			buf = append(buf, ']')
		}
		buf = append(buf, '}')
	}
	buf = append(buf, `],"usage":{"prompt_tokens":`...)
	buf = strconv.AppendInt(buf, int64(tokens), 10)
	buf = append(buf, `,"total_tokens":`...)
	buf = strconv.AppendInt(buf, int64(tokens), 10)
	buf = append(buf, `}}`...)
	ctx.SetContentType("application/json")
	_, _ = out.Write(buf)
	rs.status = 200
	rs.end()
}

// embedSlot waits for one of the local embedding slots: at once when one
// is free, in a bounded queue otherwise, and 429 past the queue.
func (s *Server) embedSlot(rs *reqState) error {
	select {
	case s.embedSlots <- struct{}{}:
		return nil
	default:
	}
	if s.embedQueue.Add(1) > int64(s.limits.MaxQueuedEmbeddings) {
		s.embedQueue.Add(-1)
		return &apiError{status: 429, typ: "rate_limit_error", code: "embeddings_busy", retryAfter: 1,
			msg: "too many embedding requests in progress (general_settings.max_concurrent_embeddings, max_queued_embeddings); retry shortly"}
	}
	defer s.embedQueue.Add(-1)
	select {
	case s.embedSlots <- struct{}{}:
		return nil
	case <-rs.ctx.Done():
		return errClientGone
	}
}
