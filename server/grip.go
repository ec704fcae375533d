package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hubbub/hubbub/access"
	"github.com/hubbub/hubbub/config"
	"github.com/hubbub/hubbub/grip"
	"github.com/hubbub/hubbub/limit"
)

// newGrip builds the GRIP proxy. Its Publish handler serves POST /publish/
// on the main listener of every node (the items reach held connections on
// any node); the proxy itself is served only with --grip-listen.
func (s *Server) newGrip(cfg config.Config, lim *limit.Limiter) (*grip.Proxy, error) {
	key, err := config.GripKey(cfg.GripSigKey)
	if err != nil {
		return nil, fmt.Errorf("--grip-sig-key: %w", err)
	}
	return grip.New(grip.Config{
		Origin: cfg.GripOrigin, Routes: cfg.GripRoutes, SigKey: key,
		MaxHeld: cfg.GripMaxHeld, MaxWebSockets: cfg.GripMaxWebSockets, MaxOriginBody: cfg.GripMaxOriginBody, OriginTimeout: cfg.GripOriginTimeout,
		MaxPublishBody: cfg.MaxBody,
		Hub:            s.hub, Access: s.access,
		AllowPublish: func(r *http.Request, id access.Identity) (time.Duration, bool) {
			return lim.AllowKey(s.rateKey(r, id))
		},
		Observer: s.metrics, Logger: s.log,
	})
}

// gripServer is the http.Server of the GRIP listener: the proxy behind
// the per-client connection limit, with main's timeouts and base context
// (so held connections end at shutdown like streams).
func (s *Server) gripServer(main *http.Server, lim *limit.Limiter) *http.Server {
	return &http.Server{
		Handler:           lim.Wrap(s.grip),
		ReadHeaderTimeout: main.ReadHeaderTimeout,
		IdleTimeout:       main.IdleTimeout,
		BaseContext:       main.BaseContext,
		ErrorLog:          main.ErrorLog,
	}
}

// listenGrip opens --grip-listen, or returns nil without it.
func (s *Server) listenGrip() (net.Listener, error) {
	if s.cfg.GripListen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", s.cfg.GripListen)
	if err != nil {
		return nil, fmt.Errorf("grip listen on %s: %w", s.cfg.GripListen, err)
	}
	return ln, nil
}

// waitGrip waits for the GRIP proxy's hijacked WebSockets at shutdown.
func (s *Server) waitGrip(ctx context.Context) {
	if s.grip != nil {
		s.grip.WaitWebSockets(ctx)
	}
}
