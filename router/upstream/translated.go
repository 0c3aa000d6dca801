package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/autorouter/autorouter/router/translate"
)

// translated serves a Responses or Messages request on a deployment that
// speaks only chat completions: the request goes as chat, and the answer
// comes back in the client's API, a stream event by event.
func (p *Pool) translated(ctx context.Context, d *Deployment, req *Request) (*Response, error) {
	if !d.native[Chat] || (req.API != Responses && req.API != Messages) {
		return nil, &badRequest{fmt.Errorf("deployment %s of model %q does not serve %s (it speaks %s)", d.ID, d.Group, req.API.Path(), d.speaks())}
	}
	chat, err := req.chatBody()
	if err != nil {
		return nil, err
	}
	creq := &Request{API: Chat, Stream: req.Stream, Body: chat, Raw: chat.Raw()}
	resp, err := p.attempt(ctx, d, creq)
	if err != nil {
		return nil, err
	}
	if resp.Status >= 400 {
		return p.translateError(req.API, resp)
	}
	if resp.Events != nil {
		var tr translate.Translator
		if req.API == Responses {
			tr = translate.NewResponsesStream(req.echo)
		} else {
			tr = translate.NewMessagesStream(req.Model)
		}
		ev := newEvents(&p.t.events, translate.NewReader(resp.Events, tr), p.maxEvent, req.API.streamDone)
		if err := ev.Peek(); err != nil {
			ev.release()
			resp.Close()
			return nil, fmt.Errorf("deployment %s: stream failed before its first event: %w", d.ID, err)
		}
		return &Response{Status: resp.Status, Events: ev, headers: sseHeaders{}, closer: closers{resp, nil}}, nil
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Close()
	if err != nil {
		return nil, fmt.Errorf("deployment %s: %w", d.ID, err)
	}
	var out []byte
	if req.API == Responses {
		out, err = translate.ChatToResponses(raw, req.echo)
	} else {
		out, err = translate.ChatToMessages(raw, req.Model)
	}
	if err != nil {
		return nil, fmt.Errorf("deployment %s: %w", d.ID, err)
	}
	return bytesResponse(resp.Status, out), nil
}

// translateError gives an upstream's error answer in the client's API.
func (p *Pool) translateError(api API, resp *Response) (*Response, error) {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Close()
	if api != Messages {
		return bytesResponse(resp.Status, raw), nil
	}
	msg := readErrorAnswer(bytes.NewReader(raw)).msg
	typ := "invalid_request_error"
	switch {
	case resp.Status == 401:
		typ = "authentication_error"
	case resp.Status == 403:
		typ = "permission_error"
	case resp.Status == 404:
		typ = "not_found_error"
	case resp.Status == 413:
		typ = "request_too_large"
	}
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": msg}})
	return bytesResponse(resp.Status, b), nil
}

// closers closes a translated answer's upstream answer.
type closers struct {
	resp *Response
	next io.Closer
}

func (c closers) Close() error {
	err := c.resp.Close()
	if c.next != nil {
		c.next.Close()
	}
	return err
}

// speaks names the APIs a deployment serves, for errors.
func (d *Deployment) speaks() string {
	var out []string
	for a := API(0); a < numAPIs; a++ {
		if d.native[a] {
			out = append(out, a.Path())
		}
	}
	if len(out) == 0 {
		return "none"
	}
	b, _ := json.Marshal(out)
	return string(b)
}
