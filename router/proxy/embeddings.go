package proxy

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/autorouter/autorouter/router/openai"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// embeddings serves local embedding models in-process (an OpenAI-compatible
// embedding server) and proxies remote ones.
func (s *Server) embeddings(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	id := s.reqID.Add(1)
	var req openai.EmbeddingRequest
	if err := json.Unmarshal(ctx.PostBody(), &req); err != nil {
		s.finish(ctx, id, start, "", nil, "", badRequest("", "request body is not valid JSON: %v", err))
		return
	}
	if req.Model == "" {
		s.finish(ctx, id, start, "", nil, "", badRequest("model", "missing required field: model"))
		return
	}
	group := s.cfg.Load().Group(req.Model)
	if len(group) == 0 {
		s.finish(ctx, id, start, req.Model, nil, "", s.unknownModel(req.Model))
		return
	}
	if group[0].Params.Provider() != "local" {
		dep, err := s.forward(ctx, start, req.Model, "/embeddings", &openai.ChatRequest{Model: req.Model}, nil, id)
		s.finish(ctx, id, start, req.Model, nil, dep, err)
		return
	}
	var inputs []string
	var one string
	if err := json.Unmarshal(req.Input, &one); err == nil {
		inputs = []string{one}
	} else if err := json.Unmarshal(req.Input, &inputs); err != nil || len(inputs) == 0 {
		s.finish(ctx, id, start, req.Model, nil, "", badRequest("input", "input must be a string or a non-empty array of strings"))
		return
	}
	box := s.rt.Load()
	if box == nil || box.enc == nil {
		s.finish(ctx, id, start, req.Model, nil, "", &apiError{status: 503, typ: "service_unavailable", msg: "models are still loading; retry shortly"})
		return
	}
	enc, err := box.enc.Encoder(req.Model)
	if err != nil {
		s.finish(ctx, id, start, req.Model, nil, "", err)
		return
	}
	dim := enc.Dim()
	vecs := make([]float32, len(inputs)*dim)
	if err := enc.Embed(ctx, inputs, vecs); err != nil {
		s.finish(ctx, id, start, req.Model, nil, "", err)
		return
	}
	resp := openai.EmbeddingResponse{Object: "list", Model: req.Model, Data: make([]openai.EmbeddingData, len(inputs))}
	for i := range inputs {
		v := vecs[i*dim : (i+1)*dim]
		var emb any = v
		if req.EncodingFormat == "base64" {
			raw := make([]byte, 4*dim)
			for k, x := range v {
				binary.LittleEndian.PutUint32(raw[4*k:], math.Float32bits(x))
			}
			emb = base64.StdEncoding.EncodeToString(raw)
		}
		resp.Data[i] = openai.EmbeddingData{Object: "embedding", Index: i, Embedding: emb}
	}
	writeJSON(ctx, 200, resp)
	s.finish(ctx, id, start, req.Model, nil, "local", nil)
}
