package server

import (
	"net/http"
	"net/http/pprof"
)

// registerPProf serves Go's profiler under /debug/pprof/ behind guard (the
// admin check). Only with --pprof: a CPU profile costs the process while it
// runs, so it is never open to everyone. The handlers are mounted on mux
// explicitly; importing net/http/pprof registers on http.DefaultServeMux,
// which hubbub never serves.
func registerPProf(mux *http.ServeMux, guard func(http.Handler) http.Handler) {
	mux.Handle("GET /debug/pprof/", guard(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/cmdline", guard(http.HandlerFunc(pprof.Cmdline)))
	mux.Handle("GET /debug/pprof/profile", guard(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/symbol", guard(http.HandlerFunc(pprof.Symbol)))
	mux.Handle("GET /debug/pprof/trace", guard(http.HandlerFunc(pprof.Trace)))
}
