package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hubbub/hubbub/cluster"
	"github.com/hubbub/hubbub/config"
	redisstore "github.com/hubbub/hubbub/store/redis"
)

// clusterState is the server's part in a several-node deployment: in Redis
// mode the fan-out bridge and the heartbeat registry; in both modes this
// node's identity.
type clusterState struct {
	id string
	// instance is random per process (cluster.Node.Instance).
	instance string
	started  time.Time
	bridge   *cluster.Bridge   // nil in embedded mode
	registry *cluster.Registry // nil in embedded mode
	addr     atomic.Value      // string: the address served on
	wg       sync.WaitGroup    // the bridge and heartbeat goroutines
	// peers are the live nodes as last listed by statsWatched (Redis
	// mode); self() says which of their stats topics this node watches.
	peers atomic.Pointer[[]cluster.Node]
}

// newInstanceID is a random id for this process (cluster.Node.Instance).
func newInstanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// nodeName is --node-id, or hostname:port of --listen (hostname:pid when the
// port is 0, so that several test nodes on one machine differ).
func nodeName(cfg config.Config) string {
	if cfg.NodeID != "" {
		return cfg.NodeID
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	_, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil || port == "0" || port == "" {
		port = strconv.Itoa(os.Getpid())
	}
	return net.JoinHostPort(host, port)
}

// startCluster wires the Redis fan-out: the broker is fed by a Bridge from
// Redis Pub/Sub (not by the store's commit listener), so every node
// delivers every topic's events in seq order whatever node stored them. It
// waits until the Bridge is subscribed, so nothing stored after New returns
// is missed. In embedded mode it only registers the node's metrics.
func (s *Server) startCluster(ctx context.Context) error {
	c := s.cluster
	c.started = time.Now().UTC()
	registerNodeInfo(s.metrics, c.id, s.build.Version)
	rs, ok := s.store.(*redisstore.Store)
	if !ok {
		return nil
	}
	c.registry = cluster.NewRegistry(rs.Client(), rs.Prefix(), s.log)
	if err := c.registry.Claim(ctx, c.id, c.instance); err != nil {
		s.cancelBase()
		return fmt.Errorf("--node-id: %w", err)
	}
	c.bridge = cluster.NewBridge(rs, rs, s.broker, cluster.Options{Logger: s.log, Decode: redisstore.DecodeMessage})
	registerFanoutMetrics(s.metrics, &c.bridge.Stats)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.bridge.Run(s.base)
	}()
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-c.bridge.Ready():
		return nil
	case <-t.C:
		s.cancelBase()
		c.wg.Wait()
		return fmt.Errorf("fan-out: could not subscribe to Redis Pub/Sub within 10s")
	}
}

// registerNodeInfo registers hubbub_node_info for the node id.
func registerNodeInfo(m *metrics, id, version string) {
	m.gaugeFunc("hubbub_node_info", "Always 1; the labels name this node and its version.",
		func() float64 { return 1 }, "node", id, "version", version)
}

// registerFanoutMetrics registers the metrics of the Redis fan-out bridge
// whose totals st holds (Redis mode only).
func registerFanoutMetrics(m *metrics, st *cluster.Stats) {
	m.counterFunc("hubbub_fanout_messages_total", "Redis Pub/Sub messages of stored events received by this node (Redis mode).",
		func() float64 { return float64(st.Messages.Load()) })
	m.counterFunc("hubbub_fanout_gap_repairs_total", "Gaps in a topic's seqs filled from the log before delivery (Redis mode).",
		func() float64 { return float64(st.Repairs.Load()) })
	m.counterFunc("hubbub_fanout_resyncs_total", "Pub/Sub (re)subscriptions after which topics with local subscribers were re-read from the log (Redis mode).",
		func() float64 { return float64(st.Resyncs.Load()) })
	m.gaugeFunc("hubbub_fanout_connected", "1 while this node receives other nodes' events from Redis Pub/Sub (Redis mode).",
		func() float64 {
			if st.Connected.Load() {
				return 1
			}
			return 0
		})
}

// startHeartbeat announces the node in Redis every cluster.HeartbeatEvery
// until the server's base context ends (Redis mode only).
func (s *Server) startHeartbeat(addr string) {
	c := s.cluster
	c.addr.Store(addr)
	if c.registry == nil {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.registry.Run(s.base, s.self)
	}()
}

// self is this node's heartbeat record.
func (s *Server) self() cluster.Node {
	c := s.cluster
	addr, _ := c.addr.Load().(string)
	n := cluster.Node{ID: c.id, Address: addr, Version: s.build.Version, Started: c.started, Connections: s.metrics.live.Load(),
		Instance: c.instance}
	if peers := c.peers.Load(); peers != nil {
		for _, p := range *peers {
			if p.ID != c.id && s.broker.Watched(statsTopicOf(p.ID)) {
				n.Watching = append(n.Watching, p.ID)
			}
		}
	}
	return n
}

// statsWatched reports whether anyone watches this node's stats topic: a
// live subscriber on this node, or (Redis mode) one on another node, as
// that node's heartbeat says (cluster.Node.Watching). It refreshes the
// list of peers on the way, so it costs one Redis read per call in Redis
// mode; a failed read counts as nobody watching elsewhere.
func (s *Server) statsWatched(ctx context.Context) bool {
	watched := s.broker.Watched(s.statsTopic())
	reg := s.cluster.registry
	if reg == nil {
		return watched
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	nodes, err := reg.List(ctx)
	if err != nil {
		return watched
	}
	s.cluster.peers.Store(&nodes)
	for _, n := range nodes {
		if n.ID != s.cluster.id && slices.Contains(n.Watching, s.cluster.id) {
			return true
		}
	}
	return watched
}

// apiNodes answers GET /api/nodes: {"self": ID, "nodes": [...]}, the nodes
// whose heartbeat is live (in embedded mode, this one).
func (s *Server) apiNodes(w http.ResponseWriter, r *http.Request) {
	var nodes []cluster.Node
	if reg := s.cluster.registry; reg != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		var err error
		if nodes, err = reg.List(ctx); err != nil {
			s.log.Warn("GET /api/nodes", "err", err)
			http.Error(w, "the store could not serve this request; try again", http.StatusServiceUnavailable)
			return
		}
	} else {
		n := s.self()
		n.Heartbeat = time.Now().UTC()
		nodes = []cluster.Node{n}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Self  string         `json:"self"`
		Nodes []cluster.Node `json:"nodes"`
	}{s.cluster.id, nodes})
}
