package proxy

import (
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/upstream"
)

// route serves POST /route, the dry run: the full decision of an auto
// router for a chat request, through the same decoding and routing as a
// real request, and no upstream call. ?nearest=k adds the router's k
// utterances nearest to the routed text.
func (s *Server) route(ctx *fasthttp.RequestCtx, snap *router.Snapshot) {
	rs, ok := s.beginBody(ctx, snap, "/route", upstream.Chat)
	if !ok {
		return
	}
	nearest := 0
	if v := ctx.QueryArgs().Peek("nearest"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 0 || n > router.MaxNearest {
			rs.fail(badRequest("nearest", "nearest must be a whole number from 0 to %d (how many nearest utterances to list)", router.MaxNearest))
			return
		}
		nearest = n
	}
	if !snap.IsRouter(rs.body.Model) {
		rs.fail(badRequest("model", "model %q is not an auto router; /route only dry-runs auto routers (have: %v)", rs.body.Model, snap.Routers()))
		return
	}
	dec, err := snap.RouteBody(rs.ctx, upstream.Chat, rs.body.Model, &rs.body)
	if err != nil {
		rs.fail(err)
		return
	}
	if nearest > 0 {
		if dec.Nearest, err = snap.Nearest(rs.ctx, rs.body.Model, dec.Text, nearest); err != nil {
			rs.fail(err)
			return
		}
	}
	rs.dec = dec
	s.observeDecision(&dec)
	writeJSON(ctx, 200, dec)
	setRoutingHeaders(&ctx.Response.Header, &dec, nil)
	rs.status = 200
	rs.end()
}
