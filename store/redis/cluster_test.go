package redis_test

import (
	"context"
	"fmt"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hubbub/hubbub/internal/redisconn"
	"github.com/hubbub/hubbub/internal/redistest"
	"github.com/hubbub/hubbub/store"
	"github.com/hubbub/hubbub/store/redis"
	"github.com/hubbub/hubbub/store/storetest"
)

// TestClusterConformance runs the store suite on a three-master Redis
// Cluster: every topic's keys are in one slot, so every script runs there.
func TestClusterConformance(t *testing.T) {
	url := redistest.Cluster(t)
	n := 0
	prefixFor := redistest.PerDir(func() string { n++; return fmt.Sprintf("c%d", n) })
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T, dir string, cfg store.Config) store.Log {
			return openStoreAt(t, url, prefixFor(dir), cfg)
		},
		Crash: func(t *testing.T, l store.Log) { redis.Crash(l.(*redis.Store)) },
	})
}

// TestClusterFanout: on a cluster, events appended to topics in many
// slots by one node reach another node's subscription to the fixed
// channels, whichever cluster node each is connected to.
func TestClusterFanout(t *testing.T) {
	url := redistest.Cluster(t)
	a := openStoreAt(t, url, "f", store.Config{})
	defer a.Close()
	b := openStoreAt(t, url, "f", store.Config{})
	defer b.Close()
	if a.Sharded() {
		t.Fatal("a cluster store publishes with SPUBLISH, which cannot leave the topic's slot")
	}
	ctx := ctxT(t)
	ps := b.Subscribe(ctx)
	defer ps.Close()
	for range redis.FanoutChannels {
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
	}
	const topics = 40
	want := map[string]bool{}
	for i := range topics {
		topic := fmt.Sprintf("slot/%d", i)
		want[topic] = true
		appendOK(t, a, msg(`{"n":1}`, topic))
	}
	for len(want) > 0 {
		msg, err := ps.Receive(ctx)
		if err != nil {
			t.Fatalf("receive with %d topics missing: %v", len(want), err)
		}
		m, ok := msg.(*goredis.Message)
		if !ok {
			continue
		}
		evs, err := redis.DecodeMessage([]byte(m.Payload))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			delete(want, e.Topic)
		}
	}
}

// TestClusterIndexAfterDataLoss: on a cluster the store appends to a topic
// without writing its index entry again for a while; when Redis lost
// everything meanwhile (so the entry too), the append script refuses to
// create the topic on the strength of the old entry, the store writes it
// again, and the topic is indexed with its new events.
func TestClusterIndexAfterDataLoss(t *testing.T) {
	url := redistest.Cluster(t)
	s := openStoreAt(t, url, "dl", store.Config{})
	defer s.Close()
	r1 := appendOK(t, s, msg(`1`, "dl/a"))[0]
	rc, err := redisconn.New(url, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	cc, ok := rc.(*goredis.ClusterClient)
	if !ok {
		t.Fatalf("%s: not a cluster client", url)
	}
	if err := cc.ForEachMaster(ctxT(t), func(ctx context.Context, c *goredis.Client) error {
		return c.FlushAll(ctx).Err()
	}); err != nil {
		t.Fatal(err)
	}
	r2 := appendOK(t, s, msg(`2`, "dl/a"))[0]
	if r2.Seq != 1 || r2.Epoch == r1.Epoch {
		t.Fatalf("after the data loss: %+v, want seq 1 of a new epoch", r2)
	}
	got, err := s.Active(ctxT(t), store.Activity{}, 10)
	if err != nil || len(got) != 1 || got[0].Topic != "dl/a" || got[0].Time.Before(r2.Time) {
		t.Fatalf("index after the data loss: %v %v, want dl/a at or after %v", got, err, r2.Time)
	}
}
