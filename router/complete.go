package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/autorouter/autorouter/router/openai"
	"github.com/autorouter/autorouter/router/sse"
	"github.com/autorouter/autorouter/router/upstream"
)

// Completion is a chat completion and how it was served.
type Completion struct {
	// ChatCompletion is the upstream's answer.
	*openai.ChatCompletion
	// Decision is the routing decision when the model was an auto router
	// (which route won, its score, every candidate's score, whether it fell
	// back to the default model and why); nil for a plain model.
	Decision *Decision
	// Model is the model group that answered: the routed target, or one of
	// its router_settings.fallbacks. Deployment is the deployment's id
	// (x-litellm-model-id); Attempts counts upstream attempts.
	Model, Deployment string
	Attempts          int
}

// FellBack reports whether a fallback group answered instead of the model
// the request (or its routing decision) chose.
func (c *Completion) FellBack() bool { return c.Decision != nil && c.Model != c.Decision.Model }

// StatusError is an upstream's own error answer that was not retried (a
// 4xx such as a bad parameter): its status and OpenAI-style message.
type StatusError struct {
	Status  int
	Message string
	// Body is the upstream's error body, up to 64 KiB.
	Body []byte
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("upstream answered %d: %s", e.Status, e.Message)
}

// Completion sends a chat completion request and returns the answer. A
// request for an auto router is routed first; the call then goes through
// the chosen model group's load balancing, retries, cooldowns and
// fallbacks, as the proxy's do. Cancelling ctx cancels the upstream call.
// For a streamed answer use Stream.
func (c *Client) Completion(ctx context.Context, req *openai.ChatRequest) (*Completion, error) {
	if req.Stream {
		return nil, errors.New("router: Completion with Stream set; call Stream instead")
	}
	s := c.Acquire()
	defer s.Release()
	resp, dec, err := c.send(ctx, s, req)
	if err != nil {
		return nil, err
	}
	defer resp.Close()
	out := &Completion{ChatCompletion: new(openai.ChatCompletion), Model: resp.Group, Deployment: resp.Deployment.ID, Attempts: resp.Attempts}
	if dec.Router != "" {
		out.Decision = &dec
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", resp.Deployment.ID, err)
	}
	if resp.Status >= 400 {
		return nil, statusError(resp.Status, data)
	}
	if err := json.Unmarshal(data, out.ChatCompletion); err != nil {
		return nil, fmt.Errorf("decoding the answer of %s: %w", resp.Deployment.ID, err)
	}
	return out, nil
}

// send encodes req and makes the call on snapshot s.
func (c *Client) send(ctx context.Context, s *Snapshot, req *openai.ChatRequest) (*upstream.Response, Decision, error) {
	if req.Model == "" {
		return nil, Decision{}, errors.New("router: the request has no Model")
	}
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, Decision{}, fmt.Errorf("encoding the request: %w", err)
	}
	body, err := openai.ParseBody(raw)
	if err != nil {
		return nil, Decision{}, fmt.Errorf("encoding the request: %w", err)
	}
	return s.Call(ctx, upstream.Chat, body)
}

func statusError(status int, body []byte) *StatusError {
	e := &StatusError{Status: status, Body: body, Message: string(bytes.TrimSpace(body))}
	var env openai.ErrorEnvelope
	if json.Unmarshal(body, &env) == nil && env.Error.Message != "" {
		e.Message = env.Error.Message
	}
	return e
}

// Stream is a streamed chat completion, read as an iterator:
//
//	for stream.Next() {
//		fmt.Print(stream.Current().Text())
//	}
//	if err := stream.Err(); err != nil { ... }
//
// A stream that the upstream cuts off before data: [DONE] ends with an
// error wrapping upstream.ErrCutOff. Retries and fallbacks happen only
// before the first chunk. Close it when done; until then it holds an
// upstream connection.
type Stream struct {
	// Decision, Model, Deployment and Attempts are as in Completion.
	Decision          *Decision
	Model, Deployment string
	Attempts          int

	snap   *Snapshot
	resp   *upstream.Response
	cur    openai.ChatChunk
	data   []byte
	err    error
	done   bool
	closed bool
}

// Stream sends a chat completion request with stream set and returns its
// chunks as they arrive; see Completion for routing and retries.
func (c *Client) Stream(ctx context.Context, req *openai.ChatRequest) (*Stream, error) {
	r := *req
	r.Stream = true
	s := c.Acquire()
	resp, dec, err := c.send(ctx, s, &r)
	if err != nil {
		s.Release()
		return nil, err
	}
	if resp.Events == nil {
		defer s.Release()
		defer resp.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.Status >= 400 {
			return nil, statusError(resp.Status, data)
		}
		return nil, fmt.Errorf("router: deployment %s answered a stream request without a stream", resp.Deployment.ID)
	}
	st := &Stream{Model: resp.Group, Deployment: resp.Deployment.ID, Attempts: resp.Attempts, snap: s, resp: resp}
	if dec.Router != "" {
		st.Decision = &dec
	}
	return st, nil
}

// Next advances to the next chunk; it returns false at the end of the
// stream or on an error (see Err).
func (st *Stream) Next() bool {
	if st.done || st.closed {
		return false
	}
	for {
		ev, err := st.resp.Events.Next()
		if err != nil {
			st.done = true
			if !errors.Is(err, io.EOF) {
				st.err = fmt.Errorf("stream from %s: %w", st.Deployment, err)
			}
			return false
		}
		var ok bool
		st.data, ok = sse.Data(st.data[:0], ev)
		if !ok || bytes.Equal(bytes.TrimSpace(st.data), []byte("[DONE]")) {
			continue
		}
		if bytes.HasPrefix(bytes.TrimSpace(st.data), []byte(`{"error"`)) {
			st.done = true
			var env openai.ErrorEnvelope
			_ = json.Unmarshal(st.data, &env)
			st.err = fmt.Errorf("stream from %s: the upstream sent an error: %s", st.Deployment, env.Error.Message)
			return false
		}
		st.cur = openai.ChatChunk{}
		if err := json.Unmarshal(st.data, &st.cur); err != nil {
			st.done = true
			st.err = fmt.Errorf("stream from %s: decoding a chunk: %w", st.Deployment, err)
			return false
		}
		return true
	}
}

// Current is the chunk Next advanced to; it is overwritten by the next call.
func (st *Stream) Current() *openai.ChatChunk { return &st.cur }

// Err is the error that ended the stream, nil after a complete one.
func (st *Stream) Err() error { return st.err }

// Close ends the stream, cancelling it upstream if it is not finished.
func (st *Stream) Close() error {
	if st.closed {
		return nil
	}
	st.closed = true
	err := st.resp.Close()
	st.snap.Release()
	return err
}

// Route decides where a chat request for the auto router model would go,
// without sending it.
func (c *Client) Route(ctx context.Context, model string, msgs []openai.Message) (Decision, error) {
	s := c.Acquire()
	defer s.Release()
	return s.Route(ctx, model, msgs)
}

// RouteText decides for a bare prompt, as if it were the only user message.
func (c *Client) RouteText(ctx context.Context, model, text string) (Decision, error) {
	s := c.Acquire()
	defer s.Release()
	return s.RouteText(ctx, model, text)
}

// Nearest returns the k utterances of the auto router model most similar
// to text, highest first (see Snapshot.Nearest).
func (c *Client) Nearest(ctx context.Context, model, text string, k int) ([]Neighbor, error) {
	s := c.Acquire()
	defer s.Release()
	return s.Nearest(ctx, model, text, k)
}

// RouteTexts decides for many prompts at once, embedding them in batches
// (the CLI's --batch mode and eval use it). Decisions come back in input
// order.
func (c *Client) RouteTexts(ctx context.Context, model string, texts []string) ([]Decision, error) {
	s := c.Acquire()
	defer s.Release()
	r := s.routers[model]
	if r == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownRouter, model)
	}
	dim := r.enc.Dim()
	out := make([]Decision, len(texts))
	const batch = 64
	vecs := make([]float32, batch*dim)
	cut := make([]string, 0, batch)
	for start := 0; start < len(texts); start += batch {
		chunk := texts[start:min(start+batch, len(texts))]
		cut = cut[:0]
		for _, t := range chunk {
			cut = append(cut, truncateRunes(t, maxCharsOr(r.maxChars), false))
		}
		embedded := cut
		if r.clip != nil {
			// The long-prompt bound, as a served request embeds it; the
			// decisions keep the text before clipping, as decide does.
			embedded = make([]string, len(cut))
			for i, t := range cut {
				embedded[i] = r.clipped(t)
			}
		}
		if err := r.enc.Embed(ctx, embedded, vecs[:len(cut)*dim]); err != nil {
			return nil, fmt.Errorf("embedding prompts %d-%d: %w", start, start+len(chunk)-1, err)
		}
		for i, t := range cut {
			if t == "" {
				out[start+i] = r.fallback(ReasonEmptyText, t, nil)
				continue
			}
			out[start+i] = r.decideVec(t, vecs[i*dim:(i+1)*dim])
		}
	}
	return out, nil
}

// Embed returns one unit vector per text from the in-process embedding
// model (a local/ model_name).
func (c *Client) Embed(ctx context.Context, model string, texts []string) ([][]float32, error) {
	s := c.Acquire()
	defer s.Release()
	enc, err := s.Encoder(model)
	if err != nil {
		return nil, err
	}
	dim := enc.Dim()
	flat := make([]float32, len(texts)*dim)
	if err := enc.Embed(ctx, texts, flat); err != nil {
		return nil, fmt.Errorf("embedding with %q: %w", model, err)
	}
	out := make([][]float32, len(texts))
	for i := range out {
		out[i] = flat[i*dim : (i+1)*dim : (i+1)*dim]
	}
	return out, nil
}

// Models lists every model_name of the current config, sorted.
func (c *Client) Models() []string {
	s := c.Acquire()
	defer s.Release()
	return s.ModelNames()
}

// Routers lists the auto routers of the current config, sorted.
func (c *Client) Routers() []string {
	s := c.Acquire()
	defer s.Release()
	return s.Routers()
}
