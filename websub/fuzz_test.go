package websub

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"hub.mode=subscribe&hub.topic=t&hub.callback=http://x/cb",
		"hub.mode=subscribe&hub.topic=t&hub.callback=http://x/cb?a=b&hub.secret=s&hub.lease_seconds=99999999999&hub.batch=3",
		"hub.mode=subscribe&hub.topic=t&hub.callback=http://x/cb&hub.batch=100&hub.batch_bytes=65536&hub.batch_wait_ms=250",
		"hub.mode=unsubscribe&hub.topic=t&hub.callback=https://x/&hub.verify=sync&hub.verify=async&hub.verify_token=z",
		"hub.mode=subscribe&hub.topic=t&hub.callback=http://x/&hub.filter=%7B%22tags%22%3A%7B%22any%22%3A%5B%22a%22%5D%7D%7D",
		"hub.mode=publish&hub.url=http://a/,http://b/&hub.url[]=http://c/&hub.topic=http://a/",
		"hub.mode=publish",
		"foo=bar&hub.foo=hub.bar",
		"hub.mode=subscribe&hub.topic=t&hub.callback=http://x/#frag",
	} {
		f.Add(s)
	}
	lb := leaseBounds{def: DefaultLease, min: time.Minute, max: 30 * 24 * time.Hour}
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		r, err := parseRequest(v, lb)
		if err != nil {
			if _, ok := err.(*requestError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		switch r.Mode {
		case ModeSubscribe, ModeUnsubscribe:
			if checkURL("cb", r.Callback) != nil || r.Topic == "" || len(r.Secret) > MaxSecretLen {
				t.Fatalf("accepted %+v", r)
			}
			lease := time.Duration(r.LeaseSeconds) * time.Second
			if lease < lb.min || lease > lb.max {
				t.Fatalf("lease %v outside bounds", lease)
			}
			if r.Batch < 0 || r.Batch > MaxBatch {
				t.Fatalf("batch %d", r.Batch)
			}
			if r.BatchBytes < 0 || r.BatchBytes > MaxBatchBytes || r.BatchWaitMS < 0 || r.BatchWaitMS > MaxBatchWaitMS ||
				(r.BatchBytes > 0 || r.BatchWaitMS > 0) && r.Batch < 2 {
				t.Fatalf("batch bytes %d, wait %d, batch %d", r.BatchBytes, r.BatchWaitMS, r.Batch)
			}
			if h := CallbackHost(r.Callback); h == "" || h != strings.ToLower(h) {
				t.Fatalf("callback host %q of %q", h, r.Callback)
			}
			if u, _ := url.Parse(r.Callback); allowedPort(r.Callback) && u.Port() != "" {
				if n, err := strconv.Atoi(u.Port()); err != nil || (n != 80 && n != 443 && (n < 1024 || n > 65535)) {
					t.Fatalf("allowedPort(%q) = true", r.Callback)
				}
			}
		case ModePublish:
			if len(r.URLs) == 0 || len(r.URLs) > MaxPublishTopics {
				t.Fatalf("urls %v", r.URLs)
			}
			for _, u := range r.URLs {
				if checkURL("u", u) != nil {
					t.Fatalf("accepted url %q", u)
				}
			}
		default:
			t.Fatalf("mode %q accepted", r.Mode)
		}
	})
}

func TestMergeFeeds(t *testing.T) {
	// entrySpans must not be fooled by an entry-named element deeper down.
	doc := []byte(`<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>x</title><entry><id>1</id><content><entry>no</entry></content></entry></feed>`)
	spans, err := entrySpans(doc, "entry", 1)
	if err != nil || len(spans) != 1 || string(doc[spans[0][0]:spans[0][1]]) != `<entry><id>1</id><content><entry>no</entry></content></entry>` {
		t.Fatalf("spans %v %v", spans, err)
	}
	if _, err := entrySpans([]byte(`<feed><title>`), "entry", 1); err == nil {
		t.Fatal("malformed feed accepted")
	}
}

func TestCheckURLNeedsHostName(t *testing.T) {
	for _, u := range []string{"http://:80/", "http://:8080/x", "https:///x"} {
		if checkURL("u", u) == nil {
			t.Errorf("%q accepted", u)
		}
	}
}
