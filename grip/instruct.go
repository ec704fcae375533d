package grip

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hubbub/hubbub/event"
)

// InstructType is the content type of an origin answer that carries its
// GRIP instructions as a JSON body instead of headers (Pushpin's older
// form, still sent by some libraries):
//
//	{"hold":{"mode":"response","channels":[{"name":"c","prev-id":"7"}],"timeout":55,
//	         "keep-alive":{"content":":\n","timeout":20}},
//	 "response":{"code":200,"headers":{...},"body":"..."}}
//
// "response" is what the client gets: the timeout answer of a response
// hold, the start of a stream.
const InstructType = "application/grip-instruct"

// isInstruct reports whether an origin answer is a grip-instruct body.
func isInstruct(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && mt == InstructType
}

// instructBody is the JSON of a grip-instruct answer.
type instructBody struct {
	Hold *struct {
		Mode     string `json:"mode"`
		Channels []struct {
			Name   string `json:"name"`
			PrevID string `json:"prev-id"`
		} `json:"channels"`
		Timeout   *int64 `json:"timeout"`
		KeepAlive *struct {
			Content    *string `json:"content"`
			ContentBin []byte  `json:"content-bin"`
			Timeout    *int64  `json:"timeout"`
			Mode       string  `json:"mode"`
		} `json:"keep-alive"`
	} `json:"hold"`
	Response *HTTPResponse `json:"response"`
}

// ParseInstructBody reads a grip-instruct body: the instructions, and the
// answer for the client as status, headers and body. Errors wrap
// ErrInstruction.
func ParseInstructBody(b []byte) (Instruction, int, http.Header, []byte, error) {
	var in Instruction
	var ib instructBody
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&ib); err != nil {
		return in, 0, nil, nil, badInstruction("grip-instruct body: %v", err)
	}
	if dec.More() {
		return in, 0, nil, nil, badInstruction("grip-instruct body: data after the JSON object")
	}
	in.Timeout = DefaultTimeout
	if h := ib.Hold; h != nil {
		var err error
		if in.Hold, err = ParseHold(h.Mode); err != nil || in.Hold == "" {
			return in, 0, nil, nil, badInstruction("grip-instruct hold mode %q is not response or stream", h.Mode)
		}
		if len(h.Channels) == 0 || len(h.Channels) > MaxChannels {
			return in, 0, nil, nil, badInstruction("grip-instruct hold needs 1..%d channels", MaxChannels)
		}
		for _, c := range h.Channels {
			if event.ValidateTopic(c.Name) != nil || event.IsReserved(c.Name) {
				return in, 0, nil, nil, badInstruction("grip-instruct channel %q is not a publishable topic", c.Name)
			}
			if len(c.PrevID) > MaxIDLen || event.ValidateKey(c.PrevID) != nil {
				return in, 0, nil, nil, badInstruction("grip-instruct channel %q: bad prev-id", c.Name)
			}
			in.Channels = append(in.Channels, Channel{Name: c.Name, PrevID: c.PrevID})
		}
		if h.Timeout != nil {
			if *h.Timeout < 0 {
				return in, 0, nil, nil, badInstruction("grip-instruct timeout is negative")
			}
			in.Timeout = clampSeconds(*h.Timeout, time.Second, MaxTimeout)
		}
		if ka := h.KeepAlive; ka != nil {
			switch {
			case ka.Content != nil:
				in.KeepAlive = []byte(*ka.Content)
			default:
				in.KeepAlive = ka.ContentBin
			}
			if len(in.KeepAlive) == 0 || len(in.KeepAlive) > MaxKeepAliveBytes {
				return in, 0, nil, nil, badInstruction("grip-instruct keep-alive must be 1..%d bytes", MaxKeepAliveBytes)
			}
			in.KeepAliveEvery, in.KeepAliveMode = DefaultKeepAlive, "idle"
			if ka.Timeout != nil {
				in.KeepAliveEvery = clampSeconds(max(0, *ka.Timeout), MinKeepAlive, MaxTimeout)
			}
			if ka.Mode == "interval" {
				in.KeepAliveMode = "interval"
			}
		}
	}
	code, hdr, body := http.StatusOK, http.Header{}, []byte(nil)
	if r := ib.Response; r != nil {
		if r.Code != 0 {
			if r.Code < 200 || r.Code > 599 {
				return in, 0, nil, nil, badInstruction("grip-instruct response code %d is not 200..599", r.Code)
			}
			code = r.Code
		}
		for _, kv := range r.Headers {
			if !validHeaderName(kv[0]) || strings.ContainsAny(kv[1], "\r\n\x00") {
				return in, 0, nil, nil, badInstruction("grip-instruct response header %q is not valid", kv[0])
			}
			hdr.Add(kv[0], kv[1])
		}
		if r.Body != nil {
			body = []byte(*r.Body)
		} else {
			body = r.BodyBin
		}
	}
	return in, code, hdr, body, nil
}

// instructResponse reads a grip-instruct answer (at most MaxOriginBody)
// and returns its instructions and an origin answer standing for its
// "response", as if the origin had sent that with GRIP headers.
func (p *Proxy) instructResponse(resp *http.Response) (*http.Response, Instruction, error) {
	b, err := readBounded(resp.Body, p.cfg.MaxOriginBody)
	resp.Body.Close()
	if err != nil {
		return nil, Instruction{}, badInstruction("%v", err)
	}
	in, code, hdr, body, err := ParseInstructBody(b)
	if err != nil {
		return nil, in, err
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	out := &http.Response{StatusCode: code, Header: hdr, Body: io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)), Request: resp.Request}
	return out, in, nil
}
