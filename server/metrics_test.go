package server

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/config"
	"github.com/hubbub/hubbub/internal/redistest"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite README.md's table of metrics")

// The README's table of metrics is MetricsReference's output.
func TestReadmeMetricsTable(t *testing.T) {
	const begin, end = "<!-- metrics:begin -->\n", "<!-- metrics:end -->"
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	head, rest, ok := strings.Cut(string(readme), begin)
	table, tail, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		t.Fatal("README.md lacks the metrics:begin / metrics:end markers")
	}
	var want bytes.Buffer
	MetricsReference(&want)
	if table == want.String() {
		return
	}
	if *updateReadme {
		if err := os.WriteFile("../README.md", []byte(head+begin+want.String()+end+tail), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("README.md's table of metrics is stale; run go test ./server -run TestReadmeMetricsTable -update-readme, or paste:\n%s", want.String())
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// registered lists the hubbub_ metric names a registry holds.
func registered(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	ch := make(chan *prometheus.Desc, 256)
	go func() { reg.Describe(ch); close(ch) }()
	var names []string
	for d := range ch {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		if strings.HasPrefix(m[1], "hubbub_") {
			names = append(names, m[1])
		}
	}
	slices.Sort(names)
	return names
}

func documented(m *metrics) map[string]metricDoc {
	out := map[string]metricDoc{}
	for _, d := range m.docs {
		out[d.Name] = d
	}
	return out
}

// Every metric a real server registers is documented (went through the
// documenting helpers), and every documented one exists on a real server
// of the mode it belongs to.
func TestMetricsDocumented(t *testing.T) {
	docs := documented(allMetrics())
	if len(docs) != len(allMetrics().docs) {
		t.Fatal("a metric is documented twice")
	}
	check := func(t *testing.T, cfg config.Config, want func(name string) bool) {
		cfg.Listen = "127.0.0.1:0"
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		s, err := New(context.Background(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		got := registered(t, s.metrics.reg)
		for _, name := range got {
			if _, ok := docs[name]; !ok {
				t.Errorf("%s is registered but not documented: register it with the metrics helpers", name)
			}
		}
		for name := range docs {
			if want(name) && !slices.Contains(got, name) {
				t.Errorf("%s is documented but this server does not have it", name)
			}
		}
	}
	fanout := func(name string) bool { return strings.HasPrefix(name, "hubbub_fanout_") }
	t.Run("embedded", func(t *testing.T) {
		cfg := config.Default()
		cfg.Data = t.TempDir()
		check(t, cfg, func(name string) bool { return !fanout(name) })
	})
	t.Run("redis", func(t *testing.T) {
		c := redistest.Client(t, "metrics of a Redis node")
		cfg := config.Default()
		cfg.Data = t.TempDir()
		cfg.Store = redistest.URL()
		cfg.RedisPrefix = redistest.Prefix(t, c)
		check(t, cfg, func(string) bool { return true })
	})
}

// HTTP requests are counted by route pattern (never the raw path) and
// status code.
func TestHTTPRequestMetrics(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	s, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer func() { srv.CloseClientConnections(); srv.Close(); _ = s.Close() }()
	do := func(method, path, body string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	do("GET", "/healthz", "")
	do("GET", "/healthz", "")
	do("GET", "/events?topic=a/b", "")
	do("GET", "/topics/some/long/topic/name", "")
	do("GET", "/topics/another", "")
	do("POST", "/publish", "not json")
	do("GET", "/no/such/page", "")
	do("GET", "/hub", "") // POST only: 405
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	want := map[[2]string]float64{
		{"GET /healthz", "200"}:           2,
		{"/events", "200"}:                1,
		{"GET /topics/{topic...}", "200"}: 2,
		{"/publish", "400"}:               1,
		{"unmatched", "404"}:              1,
		{"unmatched", "405"}:              1,
		{"GET /ws", "101"}:                1, // counted when the handler returns
	}
	count := func(route, code string) float64 {
		var pm dto.Metric
		if err := s.metrics.requests.WithLabelValues(route, code).Write(&pm); err != nil {
			t.Fatal(err)
		}
		return pm.GetCounter().GetValue()
	}
	deadline := time.Now().Add(10 * time.Second)
	for k, n := range want {
		for count(k[0], k[1]) != n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // polling, with a deadline
		}
		if got := count(k[0], k[1]); got != n {
			t.Errorf("requests{route=%q,code=%q} = %v, want %v", k[0], k[1], got, n)
		}
	}
	ch := make(chan prometheus.Metric, 100)
	s.metrics.requests.Collect(ch)
	close(ch)
	if n := len(ch); n != len(want) {
		t.Errorf("%d series of hubbub_http_requests_total, want %d: raw paths in the labels?", n, len(want))
	}
}

// BenchmarkCountRequests measures what counting costs a request: the
// status writer, the pattern handed back and the counter ("counted"), and
// with a second route lookup, as for a request stopped before the mux
// ("counted-unrouted").
func BenchmarkCountRequests(b *testing.B) {
	m := newMetrics(broker.New())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /topics/{topic...}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	for name, h := range map[string]http.Handler{"bare": mux, "counted": m.countRequests(mux, reportRoute(mux)), "counted-unrouted": m.countRequests(mux, mux)} {
		b.Run(name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/topics/photos/user/42", nil)
			w := httptest.NewRecorder()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}
