// Package pebblelog sends Pebble's log messages to slog, for every Pebble
// database hubbub opens: informational ones at debug level (they are
// chatty), errors at error level, and fatal ones at error level before the
// panic Pebble expects.
package pebblelog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
)

// New returns a pebble.Logger writing to l (discarding when l is nil).
func New(l *slog.Logger) pebble.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return logger{l}
}

type logger struct{ l *slog.Logger }

func (p logger) Infof(format string, args ...any) {
	if !p.l.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p logger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p logger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble", "fatal", true)
	panic("pebble: " + msg)
}
