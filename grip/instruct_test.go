package grip

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestParseInstructBody(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		hold       string
		chans      int
		timeout    time.Duration
		code       int
		respBody   string
		bad        bool
	}{
		{"response hold", `{"hold":{"mode":"response","channels":[{"name":"c","prev-id":"1"}],"timeout":5},"response":{"code":202,"headers":{"Content-Type":"text/plain"},"body":"t\n"}}`,
			HoldResponse, 1, 5 * time.Second, 202, "t\n", false},
		{"stream with keep-alive", `{"hold":{"mode":"stream","channels":[{"name":"a"},{"name":"b"}],"keep-alive":{"content":":\n","timeout":3}},"response":{"body-bin":"b2s="}}`,
			HoldStream, 2, DefaultTimeout, 200, "ok", false},
		{"no hold", `{"response":{"code":404,"body":"no"}}`, "", 0, DefaultTimeout, 404, "no", false},
		{"empty", `{}`, "", 0, DefaultTimeout, 200, "", false},
		{"bad mode", `{"hold":{"mode":"poll","channels":[{"name":"c"}]}}`, "", 0, 0, 0, "", true},
		{"no channels", `{"hold":{"mode":"stream","channels":[]}}`, "", 0, 0, 0, "", true},
		{"pattern channel", `{"hold":{"mode":"stream","channels":[{"name":"a/**"}]}}`, "", 0, 0, 0, "", true},
		{"bad code", `{"response":{"code":42}}`, "", 0, 0, 0, "", true},
		{"bad header", `{"response":{"headers":{"A":"b\nc"}}}`, "", 0, 0, 0, "", true},
		{"negative timeout", `{"hold":{"mode":"response","channels":[{"name":"c"}],"timeout":-1}}`, "", 0, 0, 0, "", true},
		{"empty keep-alive", `{"hold":{"mode":"stream","channels":[{"name":"c"}],"keep-alive":{"content":""}}}`, "", 0, 0, 0, "", true},
		{"not JSON", `hold`, "", 0, 0, 0, "", true},
		{"trailing data", `{} {}`, "", 0, 0, 0, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, code, _, body, err := ParseInstructBody([]byte(tc.body))
			if tc.bad {
				if !errors.Is(err, ErrInstruction) {
					t.Fatalf("got %v, want ErrInstruction", err)
				}
				return
			}
			if err != nil || in.Hold != tc.hold || len(in.Channels) != tc.chans || in.Timeout != tc.timeout || code != tc.code || string(body) != tc.respBody {
				t.Fatalf("got %+v %d %q %v", in, code, body, err)
			}
		})
	}
}

func TestIsInstruct(t *testing.T) {
	for ct, want := range map[string]bool{"application/grip-instruct": true, "application/grip-instruct; charset=utf-8": true, "text/plain": false, "": false} {
		if got := isInstruct(http.Header{"Content-Type": {ct}}); got != want {
			t.Errorf("%q: %v", ct, got)
		}
	}
}

// FuzzParseInstructBody: no input panics; accepted instructions are
// within the bounds.
func FuzzParseInstructBody(f *testing.F) {
	f.Add(`{"hold":{"mode":"response","channels":[{"name":"c","prev-id":"1"}],"timeout":5},"response":{"code":202,"headers":{"A":"b"},"body":"t"}}`)
	f.Add(`{"hold":{"mode":"stream","channels":[{"name":"a"}],"keep-alive":{"content-bin":"Og==","timeout":0,"mode":"interval"}}}`)
	f.Fuzz(func(t *testing.T, body string) {
		in, code, _, _, err := ParseInstructBody([]byte(body))
		if err != nil {
			if !errors.Is(err, ErrInstruction) {
				t.Fatalf("error %v is not ErrInstruction", err)
			}
			return
		}
		if code < 200 || code > 599 || len(in.Channels) > MaxChannels || (in.Hold != "" && len(in.Channels) == 0) ||
			in.Timeout < time.Second || in.Timeout > MaxTimeout || len(in.KeepAlive) > MaxKeepAliveBytes ||
			(in.KeepAlive != nil && in.KeepAliveEvery < MinKeepAlive) {
			t.Fatalf("out of bounds: %+v %d", in, code)
		}
	})
}
