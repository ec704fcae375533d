package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestGripWSLoad measures delivery through the GRIP listener: N
// WebSocket-over-HTTP clients of the example chat (one channel), M
// ws-message items published through POST /publish/ at R a second; it
// logs the delivery latency p50/p99 and the hub's RSS and CPU. A
// measurement, not a check: it runs only with HUBBUB_GRIP_WS_LOAD=N,M,R
// (e.g. 1000,100,10), on an otherwise quiet machine.
func TestGripWSLoad(t *testing.T) {
	spec := os.Getenv("HUBBUB_GRIP_WS_LOAD")
	if spec == "" {
		t.Skip("set HUBBUB_GRIP_WS_LOAD=CLIENTS,MESSAGES,RATE to measure")
	}
	var n, m, rate int
	if _, err := fmt.Sscanf(spec, "%d,%d,%d", &n, &m, &rate); err != nil || n < 1 || m < 1 || rate < 1 {
		t.Fatalf("HUBBUB_GRIP_WS_LOAD=%q: want CLIENTS,MESSAGES,RATE", spec)
	}
	node := needGripOrigin(t)
	hb := startGripHub(t, node, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	ready := make(chan struct{}, n)
	for i := range n {
		c, _, err := websocket.Dial(ctx, fmt.Sprintf("%s/wschat?name=c%d", wsURL(hb.URL), i), nil)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		defer c.CloseNow()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for got := 0; got <= m; got++ {
				_, b, err := c.Read(ctx)
				if err != nil {
					return
				}
				if got == 0 { // the welcome: subscribed
					ready <- struct{}{}
					continue
				}
				if ns, err := strconv.ParseInt(string(b), 10, 64); err == nil {
					mu.Lock()
					lat = append(lat, time.Since(time.Unix(0, ns)))
					mu.Unlock()
				}
			}
		}()
	}
	for range n {
		<-ready
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for range m {
		<-tick.C
		body, _ := json.Marshal(map[string]any{"items": []any{map[string]any{"channel": "wschat",
			"formats": map[string]any{"ws-message": map[string]any{"content": strconv.FormatInt(time.Now().UnixNano(), 10)}}}}})
		if a := hb.hub.do(t, http.MethodPost, "/publish/", ctHeader("application/json"), body); a.Status != http.StatusOK {
			t.Fatalf("publish: %v", a)
		}
	}
	wg.Wait()
	if len(lat) != n*m {
		t.Fatalf("%d deliveries, want %d", len(lat), n*m)
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	rss, cpu := procStats(t, hb.hub.cmd.Process.Pid)
	t.Logf("GRIP WebSocket load: %d clients, %d messages at %d/s: %d deliveries, p50 %v, p99 %v, max %v; hub RSS %d MiB, CPU %v",
		n, m, rate, len(lat), q(0.5).Round(time.Millisecond), q(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond), rss>>20, cpu)
}

// procStats reads a process's resident memory (bytes) and CPU time so far
// from /proc.
func procStats(t *testing.T, pid int) (rss int64, cpu time.Duration) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if kb, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			v, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")), 10, 64)
			rss = v << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command's closing parenthesis: utime and stime
	// are the 12th and 13th (clock ticks of 1/100 s on Linux).
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
	f := strings.Fields(rest)
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return rss, time.Duration(ut+st) * 10 * time.Millisecond
}
