package redis_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubbub/hubbub/internal/redistest"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/store/redis"
	"github.com/hubbub/hubbub/store/storetest"
)

func redisAddr() string { return redistest.Addr() }

func redisURL() string { return "redis://" + redisAddr() + "/0" }

func rawClient(tb testing.TB) *goredis.Client { return redistest.Client(tb, "Redis store") }

func newPrefix(tb testing.TB, c *goredis.Client) string { return redistest.Prefix(tb, c) }

func deletePrefix(tb testing.TB, c *goredis.Client, p string) { redistest.DeletePrefix(tb, c, p) }

func quiet() redis.Option { return redis.WithLogger(slog.New(slog.DiscardHandler)) }

func openStore(tb testing.TB, prefix string, cfg store.Config, opts ...redis.Option) *redis.Store {
	tb.Helper()
	return openStoreAt(tb, redisURL(), prefix, cfg, opts...)
}

// openStoreAt is openStore on the Redis (or Redis Cluster) at url.
func openStoreAt(tb testing.TB, url, prefix string, cfg store.Config, opts ...redis.Option) *redis.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := redis.Open(ctx, url, cfg, append([]redis.Option{redis.WithPrefix(prefix), quiet()}, opts...)...)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return s
}

// TestConformance runs the store suite; each suite directory maps to its own
// key prefix, so reopening a directory reopens the same data.
func TestConformance(t *testing.T) {
	c := rawClient(t)
	prefixFor := redistest.PerDir(func() string { return newPrefix(t, c) })
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T, dir string, cfg store.Config) store.Log {
			return openStore(t, prefixFor(dir), cfg)
		},
		// For Redis a crash is a client that goes away without Close: what
		// the scripts stored is in Redis.
		Crash: func(t *testing.T, l store.Log) { redis.Crash(l.(*redis.Store)) },
	})
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func appendOK(t *testing.T, s store.Log, drafts ...event.Draft) []store.Result {
	t.Helper()
	for i := range drafts {
		if err := drafts[i].Validate(); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.Append(ctxT(t), drafts)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return res
}

func msg(data string, topics ...string) event.Draft {
	return event.Draft{Topics: topics, Data: []byte(data)}
}

// TestDataLoss: when a topic's keys vanish (Redis restarted without
// persistence), the next append starts a new epoch at seq 1.
func TestDataLoss(t *testing.T) {
	c := rawClient(t)
	p := newPrefix(t, c)
	s := openStore(t, p, store.Config{})
	defer s.Close()
	old := appendOK(t, s, msg("1", "dl"), msg("2", "dl"))
	if old[1].Seq != 2 {
		t.Fatalf("results %+v", old)
	}
	deletePrefix(t, c, p)
	h, err := s.Head(ctxT(t), "dl")
	if err != nil || h != (store.Head{First: 1}) {
		t.Fatalf("head after loss = %+v, %v; want the head of an unknown topic", h, err)
	}
	r := appendOK(t, s, msg("after", "dl"))[0]
	if r.Seq != 1 || r.Epoch == "" || r.Epoch == old[0].Epoch {
		t.Fatalf("append after loss = %+v, want seq 1 in a new epoch (old %q)", r, old[0].Epoch)
	}
	pg, err := s.Read(ctxT(t), "dl", store.Query{Limit: 10})
	if err != nil || len(pg.Events) != 1 || string(pg.Events[0].Data) != "after" || pg.Head != (store.Head{Epoch: r.Epoch, First: 1, Last: 1}) {
		t.Fatalf("read after loss = %+v, %v", pg, err)
	}
	// Losing only the meta (the rest survived) also starts afresh, and an
	// idempotency key of the old epoch no longer counts.
	d := msg("idem", "dl")
	d.IdempotencyKey = "I"
	if r2 := appendOK(t, s, d)[0]; r2.Seq != 2 || r2.Duplicate {
		t.Fatalf("idempotent append = %+v", r2)
	}
	if err := c.Del(ctxT(t), p+":{dl}:meta").Err(); err != nil {
		t.Fatal(err)
	}
	if r2 := appendOK(t, s, d)[0]; r2.Seq != 1 || r2.Duplicate || r2.Epoch == r.Epoch {
		t.Fatalf("append after meta loss = %+v", r2)
	}
}

// TestPublish: every script call publishes its new events, decodable and in
// order, on the topic's channel.
func TestPublish(t *testing.T) {
	c := rawClient(t)
	p := newPrefix(t, c)
	s := openStore(t, p, store.Config{})
	defer s.Close()
	topic := "pub/{odd}%topic"
	ctx := ctxT(t)
	var ps *goredis.PubSub
	if s.Sharded() {
		ps = c.SSubscribe(ctx, s.Channel(topic))
	} else {
		ps = c.Subscribe(ctx, s.Channel(topic))
	}
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}
	full := event.Draft{
		Topics: []string{topic, "pub/other"}, Type: "update", Key: "k 1/é", ContentType: "application/octet-stream",
		Data: []byte{0, 1, 2, '\n', 255}, Tags: []string{"a", "b c"}, Geo: &event.Geo{Lat: 1.5, Lon: -2.25},
		IdempotencyKey: "i1",
	}
	appendOK(t, s, full, msg("two", topic))
	appendOK(t, s, full) // a duplicate: nothing published for topic
	appendOK(t, s, msg("three", topic))
	stored, err := s.Read(ctx, topic, store.Query{Limit: 10})
	if err != nil || len(stored.Events) != 3 {
		t.Fatalf("read: %v, %d events", err, len(stored.Events))
	}
	var got []*event.Event
	for len(got) < 3 {
		m, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := redis.DecodeMessage([]byte(m.Payload))
		if err != nil {
			t.Fatalf("DecodeMessage: %v", err)
		}
		if len(evs) > 0 && evs[0].Topic != topic {
			continue // another topic sharing the channel
		}
		got = append(got, evs...)
	}
	if len(got) != 3 {
		t.Fatalf("received %d events, want 3", len(got))
	}
	for i, e := range stored.Events {
		if g := describe(got[i]); g != describe(e) {
			t.Fatalf("published event %d = %s, stored %s", i, g, describe(e))
		}
	}
}

// describe renders every field of e, for comparisons.
func describe(e *event.Event) string {
	geo := "nil"
	if e.Geo != nil {
		geo = fmt.Sprint(*e.Geo)
	}
	return fmt.Sprintf("%q %q %d %q %q %s %q %x %q %s %q", e.Topic, e.Epoch, e.Seq, e.Type, e.Key,
		e.Time.Format(time.RFC3339Nano), e.ContentType, e.Data, e.Tags, geo, e.IdempotencyKey)
}

// TestOnCommitOrder: concurrent appends to one topic reach the listener in
// seq order, each once, and before their Append returns.
func TestOnCommitOrder(t *testing.T) {
	c := rawClient(t)
	var mu sync.Mutex
	seen := map[string][]uint64{}
	listener := func(evs []*event.Event) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range evs {
			seen[e.Topic] = append(seen[e.Topic], e.Seq)
		}
	}
	s := openStore(t, newPrefix(t, c), store.Config{OnCommit: listener})
	defer s.Close()
	const workers, per = 32, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				d := msg(fmt.Sprintf("%d-%d", w, i), "order")
				if i%7 == 0 {
					d.Topics = append(d.Topics, "order/b")
				}
				res, err := s.Append(context.Background(), []event.Draft{d})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, r := range res {
					if n := len(seen[r.Topic]); n == 0 || seen[r.Topic][n-1] < r.Seq {
						err = fmt.Errorf("Append returned %s:%d before the listener saw it", r.Topic, r.Seq)
					}
				}
				mu.Unlock()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, topic := range []string{"order", "order/b"} {
		h, err := s.Head(ctxT(t), topic)
		if err != nil {
			t.Fatal(err)
		}
		got := seen[topic]
		ok := uint64(len(got)) == h.Last
		for i := 0; ok && i < len(got); i++ {
			ok = got[i] == uint64(i+1)
		}
		if !ok {
			t.Fatalf("listener saw %s seqs %v, want 1..%d in order", topic, got, h.Last)
		}
	}
}

// proxy forwards TCP connections to Redis until it is cut.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	cut   bool
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			p.mu.Lock()
			if p.cut {
				_ = in.Close()
				_ = out.Close()
			}
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); _ = out.Close() }()
			go func() { _, _ = io.Copy(in, out); _ = in.Close() }()
		}
	}()
	t.Cleanup(p.close)
	return p
}

// close stops accepting and drops every connection.
func (p *proxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		_ = c.Close()
	}
}

// TestUnreachable: with Redis gone, Append fails quickly and never
// acknowledges; Open fails on an address nothing listens on.
func TestUnreachable(t *testing.T) {
	c := rawClient(t)
	p := newPrefix(t, c)
	px := newProxy(t, redisAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := redis.Open(ctx, "redis://"+px.ln.Addr().String()+"/0", store.Config{}, redis.WithPrefix(p), quiet(),
		redis.WithAppendTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	appendOK(t, s, msg("1", "down"))
	px.close()
	start := time.Now()
	for i := range 3 {
		t0 := time.Now()
		res, err := s.Append(context.Background(), []event.Draft{msg(fmt.Sprint(i), "down")})
		t.Logf("failing append %d took %v: %v", i, time.Since(t0), err)
		if err == nil {
			t.Fatalf("Append with Redis gone = %+v, want an error", res)
		}
		if errors.Is(err, store.ErrClosed) {
			t.Fatalf("Append with Redis gone = %v", err)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("three failing appends took %v", d)
	}
	if _, err := s.Head(context.Background(), "down"); err == nil {
		t.Fatal("Head with Redis gone succeeded")
	}
	if h, err := s.Head(ctxT(t), "down"); err == nil {
		t.Fatalf("head %+v", h)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	octx, ocancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ocancel()
	if s2, err := redis.Open(octx, "redis://"+addr+"/0", store.Config{}, quiet()); err == nil {
		_ = s2.Close()
		t.Fatal("Open of a closed port succeeded")
	}
	// What was acknowledged is in Redis.
	s3 := openStore(t, p, store.Config{})
	defer s3.Close()
	if h, err := s3.Head(ctxT(t), "down"); err != nil || h.Last < 1 {
		t.Fatalf("head after outage = %+v, %v", h, err)
	}
}

// TestTopicNames: topics with braces and percent signs get keys of their
// own, all in one hash tag per topic.
func TestTopicNames(t *testing.T) {
	c := rawClient(t)
	p := newPrefix(t, c)
	s := openStore(t, p, store.Config{})
	defer s.Close()
	topics := []string{"a}b", "{a}", "a%7Db", "a%b", "a", "a}:idem:x"}
	epochs := map[string]bool{}
	for _, tp := range topics {
		d := msg(tp, tp)
		d.IdempotencyKey = "x}:log"
		d.Key = "k"
		r := appendOK(t, s, d)[0]
		if r.Seq != 1 || r.Duplicate || epochs[r.Epoch] {
			t.Fatalf("first append to %q = %+v", tp, r)
		}
		epochs[r.Epoch] = true
	}
	for _, tp := range topics {
		pg, err := s.Read(ctxT(t), tp, store.Query{Limit: 10})
		if err != nil || len(pg.Events) != 1 || string(pg.Events[0].Data) != tp {
			t.Fatalf("read %q = %+v, %v", tp, pg, err)
		}
	}
	keys, err := c.Keys(ctxT(t), p+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k == p+":topics" {
			continue
		}
		lb, rb := strings.IndexByte(k, '{'), strings.IndexByte(k, '}')
		if lb != len(p)+1 || rb < lb+2 || strings.ContainsAny(k[lb+1:rb], "{") {
			t.Errorf("key %q has no clean hash tag", k)
		}
	}
	if !slices.Contains(keys, p+":{a%7Db}:log") || !slices.Contains(keys, p+":{a%257Db}:log") {
		t.Errorf("keys %q lack the escaped topics' logs", keys)
	}
}

// TestSweepForgetsLostTopics: the sweep drops topics whose keys are gone
// from the index, and trims the others by age.
func TestSweepForgetsLostTopics(t *testing.T) {
	c := rawClient(t)
	p := newPrefix(t, c)
	clock := storetest.NewClock()
	s := openStore(t, p, store.Config{Now: clock.Now, Retention: store.Retention{MaxAge: time.Hour}})
	defer s.Close()
	appendOK(t, s, msg("1", "lost", "kept"))
	for _, k := range []string{"log", "meta"} {
		if err := c.Del(ctxT(t), p+":{lost}:"+k).Err(); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * time.Hour)
	if err := s.TrimExpired(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	members, err := c.ZRange(ctxT(t), p+":topics", 0, -1).Result()
	if err != nil || !slices.Equal(members, []string{"kept"}) {
		t.Fatalf("index after sweep = %q, %v; want [kept]", members, err)
	}
	if h, err := s.Head(ctxT(t), "kept"); err != nil || h.First != 2 || h.Last != 1 {
		t.Fatalf("head of kept = %+v, %v; want everything trimmed", h, err)
	}
}
