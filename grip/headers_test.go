package grip

import (
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseHold(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{"", "", false},
		{"response", HoldResponse, false},
		{" stream ", HoldStream, false},
		{"Stream", "", true},
		{"poll", "", true},
	} {
		got, err := ParseHold(tc.in)
		if got != tc.want || (err != nil) != tc.bad {
			t.Errorf("ParseHold(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestParseChannels(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want []Channel
		bad  bool
	}{
		{"none", nil, nil, false},
		{"one", []string{"c1"}, []Channel{{Name: "c1"}}, false},
		{"two with prev-id", []string{"c1; prev-id=7, c2"}, []Channel{{Name: "c1", PrevID: "7"}, {Name: "c2"}}, false},
		{"several lines", []string{"a", "b; prev-id=x"}, []Channel{{Name: "a"}, {Name: "b", PrevID: "x"}}, false},
		{"quoted prev-id", []string{`c; prev-id="a,b;c"`}, []Channel{{Name: "c", PrevID: "a,b;c"}}, false},
		{"unknown params ignored", []string{"c; filter=skip-self; prev-id=3"}, []Channel{{Name: "c", PrevID: "3"}}, false},
		{"empty elements skipped", []string{" , c ,"}, []Channel{{Name: "c"}}, false},
		{"topic with slashes", []string{"room/1"}, []Channel{{Name: "room/1"}}, false},
		{"pattern refused", []string{"room/*"}, nil, true},
		{"reserved refused", []string{"$sys/stats/x"}, nil, true},
		{"params without name", []string{"; prev-id=1"}, nil, true},
		{"unterminated quote", []string{`c; prev-id="x`}, nil, true},
		{"control character", []string{"c\x01"}, nil, true},
		{"too many", []string{strings.Repeat("c,", MaxChannels) + "d"}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseChannels(tc.in)
			if (err != nil) != tc.bad || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseChannels(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.bad)
			}
			if err != nil && !errors.Is(err, ErrInstruction) {
				t.Errorf("error %v is not ErrInstruction", err)
			}
		})
	}
}

func TestParseTimeout(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"", DefaultTimeout, false},
		{"20", 20 * time.Second, false},
		{"0", time.Second, false},
		{"999999999999", MaxTimeout, false},
		{"-1", 0, true},
		{"1.5", 0, true},
		{"soon", 0, true},
	} {
		got, err := ParseTimeout(tc.in)
		if got != tc.want || (err != nil) != tc.bad {
			t.Errorf("ParseTimeout(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestParseKeepAlive(t *testing.T) {
	for _, tc := range []struct {
		in    string
		data  string
		every time.Duration
		mode  string
		bad   bool
	}{
		{"ping", "ping", DefaultKeepAlive, "idle", false},
		{`:\n\n; format=cstring; timeout=20`, ":\n\n", 20 * time.Second, "idle", false},
		{`a\\b\tc\r; format=cstring`, "a\\b\tc\r", DefaultKeepAlive, "idle", false},
		{"OgoK; format=base64; timeout=5; mode=interval", ":\n\n", 5 * time.Second, "interval", false},
		{"x; timeout=0", "x", MinKeepAlive, "idle", false},
		{"x; format=raw", "x", DefaultKeepAlive, "idle", false},
		{`x\q; format=cstring`, "", 0, "", true},
		{`x\; format=cstring`, "", 0, "", true},
		{"!!; format=base64", "", 0, "", true},
		{"x; format=hex", "", 0, "", true},
		{"x; timeout=soon", "", 0, "", true},
		{"x; mode=sometimes", "", 0, "", true},
		{"; timeout=3", "", 0, "", true},
		{strings.Repeat("a", MaxKeepAliveBytes+1), "", 0, "", true},
	} {
		data, every, mode, err := ParseKeepAlive(tc.in)
		if string(data) != tc.data || every != tc.every || mode != tc.mode || (err != nil) != tc.bad {
			t.Errorf("ParseKeepAlive(%q) = %q, %v, %q, %v", tc.in, data, every, mode, err)
		}
	}
}

func TestParseLink(t *testing.T) {
	base, _ := url.Parse("http://origin.test:3000/stream/1?x=y")
	for _, tc := range []struct {
		name    string
		in      []string
		want    string
		timeout time.Duration
		bad     bool
	}{
		{"none", nil, "", 0, false},
		{"relative", []string{"</stream/2>; rel=next"}, "http://origin.test:3000/stream/2", 0, false},
		{"with timeout", []string{"</s?after=5>; rel=next; timeout=120"}, "http://origin.test:3000/s?after=5", 120 * time.Second, false},
		{"quoted rel, other links first", []string{`</a>; rel=prev, </b>; rel="next"`}, "http://origin.test:3000/b", 0, false},
		{"absolute on the origin", []string{"<http://origin.test:3000/n>; rel=next"}, "http://origin.test:3000/n", 0, false},
		{"comma inside the URL", []string{"</a,b>; rel=next"}, "http://origin.test:3000/a,b", 0, false},
		{"other host refused", []string{"<http://evil.test/n>; rel=next"}, "", 0, true},
		{"other scheme refused", []string{"<https://origin.test:3000/n>; rel=next"}, "", 0, true},
		{"no brackets", []string{"/n; rel=next"}, "", 0, true},
		{"bad timeout", []string{"</n>; rel=next; timeout=-2"}, "", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, timeout, err := ParseLink(tc.in, base)
			got := ""
			if u != nil {
				got = u.String()
			}
			if got != tc.want || timeout != tc.timeout || (err != nil) != tc.bad {
				t.Errorf("ParseLink(%q) = %q, %v, %v", tc.in, got, timeout, err)
			}
		})
	}
}

func TestParseInstruction(t *testing.T) {
	base, _ := url.Parse("http://o.test/")
	h := http.Header{}
	h.Set("Grip-Hold", "stream")
	h.Add("Grip-Channel", "a; prev-id=1")
	h.Add("Grip-Channel", "b")
	h.Set("Grip-Keep-Alive", `\n; format=cstring; timeout=10`)
	h.Set("Grip-Link", "</next>; rel=next; timeout=30")
	in, err := ParseInstruction(h, base)
	if err != nil {
		t.Fatal(err)
	}
	if in.Hold != HoldStream || len(in.Channels) != 2 || in.Channels[0].PrevID != "1" || string(in.KeepAlive) != "\n" ||
		in.KeepAliveEvery != 10*time.Second || in.Next.String() != "http://o.test/next" || in.NextTimeout != 30*time.Second || in.Timeout != DefaultTimeout {
		t.Errorf("got %+v", in)
	}
	for name, hdr := range map[string]http.Header{
		"hold without channel": {"Grip-Hold": {"response"}},
		"bad hold":             {"Grip-Hold": {"forever"}, "Grip-Channel": {"a"}},
		"huge header":          {"Grip-Channel": {strings.Repeat("a", maxHeaderValue+1)}},
	} {
		if _, err := ParseInstruction(hdr, base); !errors.Is(err, ErrInstruction) {
			t.Errorf("%s: got %v, want ErrInstruction", name, err)
		}
	}
	if in, err := ParseInstruction(http.Header{}, base); err != nil || in.Hold != "" {
		t.Errorf("no instructions: %+v %v", in, err)
	}
}

// FuzzParseInstruction: no input panics, and what is accepted is within
// the bounds.
func FuzzParseInstruction(f *testing.F) {
	f.Add("stream", "a; prev-id=1, b", "20", `:\n; format=cstring; timeout=5`, "</n>; rel=next; timeout=3")
	f.Add("response", `c; prev-id="x,y"`, "x", "YQ==; format=base64; mode=interval", `</a>; rel="next"`)
	f.Add("", "", "", "", "")
	base, _ := url.Parse("http://o.test/p")
	f.Fuzz(func(t *testing.T, hold, channels, timeout, keepAlive, link string) {
		h := http.Header{"Grip-Hold": {hold}, "Grip-Channel": {channels}, "Grip-Timeout": {timeout},
			"Grip-Keep-Alive": {keepAlive}, "Grip-Link": {link}}
		in, err := ParseInstruction(h, base)
		if err != nil {
			if !errors.Is(err, ErrInstruction) {
				t.Fatalf("error %v is not ErrInstruction", err)
			}
			return
		}
		if len(in.Channels) > MaxChannels || in.Timeout < time.Second || in.Timeout > MaxTimeout ||
			len(in.KeepAlive) > MaxKeepAliveBytes || (in.KeepAlive != nil && in.KeepAliveEvery < MinKeepAlive) {
			t.Fatalf("out of bounds: %+v", in)
		}
		if in.Next != nil && (in.Next.Host != base.Host || in.Next.Scheme != base.Scheme) {
			t.Fatalf("next link off the origin: %v", in.Next)
		}
	})
}
