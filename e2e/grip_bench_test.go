package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestGripBench measures delivery through the GRIP listener against
// hubbub's native SSE on the same hub: N held streams (HUBBUB_GRIP_BENCH=N,
// e.g. 10000; unset skips the test), then 100 publishes at 10/s, each
// stamped with its send time; every stream records when it got each. It
// logs latency p50/p99, the hub's CPU time during the publishes and its
// RSS with the streams held. Needs a file descriptor limit above N in
// both this process and the hub. Run alone:
//
//	HUBBUB_GRIP_BENCH=10000 go test -run TestGripBench -v -timeout 20m ./e2e
func TestGripBench(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("HUBBUB_GRIP_BENCH"))
	if n <= 0 {
		t.Skip("set HUBBUB_GRIP_BENCH=N to measure N held streams")
	}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "bench-grip")
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, ":\n\n")
	}))
	defer origin.Close()
	h := startHub(t, "", "--grip-listen", "127.0.0.1:0", "--grip-origin", origin.URL, "--grip-sig-key", gripSigKey,
		"--grip-max-held", strconv.Itoa(n+10), "--subscriber-buffer", "1024")
	h.waitLog(t, "GRIP proxy listening", 10*time.Second)
	m := gripAddrRE.FindStringSubmatch(h.Stderr())
	gripURL := "http://" + strings.Trim(m[1], `"`)

	grip := benchRun(t, h, n, "grip", gripURL+"/events", `hubbub_connections{transport="grip-stream"}`,
		func(stamp string) []byte {
			return fmt.Appendf(nil, `{"items":[{"channel":"bench-grip","formats":{"http-stream":{"content":"data: %s\n\n"}}}]}`, stamp)
		}, "/publish/")
	native := benchRun(t, h, n, "native sse", h.URL+"/events?topic=bench-native", `hubbub_connections{transport="sse"}`,
		func(stamp string) []byte { return fmt.Appendf(nil, `{"topic":"bench-native","data":%q}`, stamp) }, "/publish")
	t.Logf("%d streams, 100 publishes at 10/s, on this machine (%d CPUs):\n%s\n%s", n, cpuCount(), grip, native)
}

// benchRun opens n streams at url, waits until the metric counts them,
// publishes 100 stamped events at 10/s and returns a line of figures.
func benchRun(t *testing.T, h *hubProc, n int, name, url, metric string, body func(stamp string) []byte, path string) string {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: -1, DialContext: (&net.Dialer{}).DialContext}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	var mu sync.Mutex
	var lat []time.Duration
	var wg, open sync.WaitGroup
	sem := make(chan struct{}, 100)
	open.Add(n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			req.Header.Set("Accept", "text/event-stream")
			resp, err := client.Do(req)
			<-sem
			open.Done()
			if err != nil {
				return
			}
			defer resp.Body.Close()
			br := bufio.NewReaderSize(resp.Body, 4096)
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if strings.HasPrefix(line, "data: ") {
					// The stamp alone (GRIP) or inside the event's JSON (native).
					if ns, err := strconv.ParseInt(stampRE.FindString(line), 10, 64); err == nil {
						d := time.Since(time.Unix(0, ns))
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					}
				}
			}
		}()
	}
	open.Wait()
	h.waitMetric(t, metric, 5*time.Minute, func(v float64) bool { return v >= float64(n) })
	rss := procRSS(h)
	cpu0 := procCPU(h)
	tick := time.NewTicker(100 * time.Millisecond)
	for range 100 {
		<-tick.C
		stamp := strconv.FormatInt(time.Now().UnixNano(), 10)
		if a := h.do(t, "POST", path, ctHeader("application/json"), body(stamp)); a.Status != 200 {
			t.Fatalf("publish: %s", a)
		}
	}
	tick.Stop()
	// Wait for the deliveries (or 60 s).
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		got := len(lat)
		mu.Unlock()
		if got >= 100*n || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling a counter, with a deadline
	}
	cpu := procCPU(h) - cpu0
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	return fmt.Sprintf("%-10s delivered %d/%d  latency p50 %v p99 %v max %v  hub CPU %v during the publishes (%.1f µs/delivery)  RSS %d MiB with the streams held",
		name, len(lat), 100*n, pct(0.50).Round(time.Millisecond/10), pct(0.99).Round(time.Millisecond/10), pct(1).Round(time.Millisecond),
		cpu.Round(time.Millisecond), float64(cpu.Microseconds())/float64(max(1, len(lat))), rss>>20)
}

// stampRE finds a send time in nanoseconds in a data line.
var stampRE = regexp.MustCompile(`[0-9]{18,}`)

// procCPU is the hub process's user+system CPU time so far.
func procCPU(h *hubProc) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", h.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100) // clock ticks (USER_HZ 100)
}

// procRSS is the hub process's resident set in bytes.
func procRSS(h *hubProc) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func cpuCount() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}
