package tasks

import (
	"errors"
	"fmt"
	"time"
)

// RetryAfter wraps a handler's error to ask for the next run exactly d from
// now (a server's Retry-After, say) instead of the backoff. It still counts
// as a failed attempt towards KindOptions.MaxAttempts. err may be nil.
func RetryAfter(d time.Duration, err error) error {
	return &retryAfterError{d: max(d, 0), err: err}
}

// Permanent wraps a handler's error to say that retrying cannot help: the
// task goes to the dead-letter list at once.
func Permanent(err error) error {
	return &permanentError{err: err}
}

type retryAfterError struct {
	d   time.Duration
	err error
}

func (e *retryAfterError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("retry after %v", e.d)
	}
	return fmt.Sprintf("retry after %v: %v", e.d, e.err)
}

func (e *retryAfterError) Unwrap() error { return e.err }

type permanentError struct{ err error }

func (e *permanentError) Error() string {
	if e.err == nil {
		return "permanent failure"
	}
	return e.err.Error()
}

func (e *permanentError) Unwrap() error { return e.err }

// RetryDelay reports whether err (or an error it wraps) came from
// RetryAfter, and the delay it asked for.
func RetryDelay(err error) (time.Duration, bool) {
	var ra *retryAfterError
	if errors.As(err, &ra) {
		return ra.d, true
	}
	return 0, false
}

// IsPermanent reports whether err (or an error it wraps) came from
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}
