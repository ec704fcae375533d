// Package e2e holds hubbub's black-box tests. TestMain builds the real
// binary (with -race when the tests run with -race) and the tests start it
// as a subprocess, speaking HTTP to it on 127.0.0.1 as any client would:
// publish, SSE, long-poll, NDJSON streaming, retrieval, crash durability
// under kill -9, slow subscribers, the CLI and graceful shutdown.
//
// The package has no code outside its tests; run it with
//
//	go test -race ./e2e
package e2e
