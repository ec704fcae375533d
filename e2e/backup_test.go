package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runCLI runs the hubbub binary with args (and extra environment) and
// returns its exit code and combined output.
func runCLI(t testing.TB, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(hubBinary, args...)
	cmd.Env = append(hubEnv(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatalf("hubbub %v: %v", args, err)
	}
	return 0, out.String()
}

// acked is what a publisher was told about one event.
type acked struct {
	seq   uint64
	epoch string
	n     int // the event's data is {"n":n}; one publisher per topic, so n == seq
}

// TestBackupUnderLoadRestore takes a backup with `hubbub backup` while
// publishers keep publishing and a webhook subscriber is being delivered
// to, restores it with `hubbub restore` into a fresh data directory, and
// starts a new hub on it:
//   - every event acknowledged before the backup began is there, with its
//     data; each topic's log is a gap-free prefix of the original's;
//   - topics have new epochs, so a cursor from after the backup gets an
//     "epoch" reset (with --keep-epochs: the same epochs, no reset);
//   - the webhook subscription resumes from its place: between the old
//     hub's deliveries and the new hub's, every event of the restored log
//     reached the callback (at least once), with none skipped.
func TestBackupUnderLoadRestore(t *testing.T) {
	t.Parallel()
	type hook struct {
		from string // "a" or "b": which hub delivered
		n    int
	}
	var hookMu sync.Mutex
	var hooks []hook
	from := "a"
	verified := make(chan struct{}, 1)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			io.WriteString(w, r.URL.Query().Get("hub.challenge"))
			select {
			case verified <- struct{}{}:
			default:
			}
			return
		}
		var d struct{ N int }
		body, _ := io.ReadAll(r.Body)
		if json.Unmarshal(body, &d) == nil {
			hookMu.Lock()
			hooks = append(hooks, hook{from, d.N})
			hookMu.Unlock()
		}
	}))
	defer cb.Close()

	a := startHub(t, "", "--allow-private-callbacks")
	const hooked = "backup/load/0"
	form := url.Values{"hub.mode": {"subscribe"}, "hub.topic": {hooked}, "hub.callback": {cb.URL + "/hook"}}
	if ans := a.do(t, http.MethodPost, "/hub", ctHeader("application/x-www-form-urlencoded"), []byte(form.Encode())); ans.Status != http.StatusAccepted {
		t.Fatalf("subscribe: %s", ans)
	}
	select {
	case <-verified:
	case <-time.After(20 * time.Second):
		t.Fatal("no verification of intent")
	}
	a.waitMetric(t, `hubbub_websub_verifications_total{mode="subscribe",result="ok"}`, 20*time.Second, func(v float64) bool { return v >= 1 })

	// Publishers: one per topic, one event per request, until told to stop.
	const topics = 4
	var (
		ackMu  sync.Mutex
		acks   = map[string][]acked{}
		total  atomic.Int64
		stop   = make(chan struct{})
		wg     sync.WaitGroup
		pubErr = make(chan error, topics)
	)
	for i := range topics {
		topic := fmt.Sprintf("backup/load/%d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				ans, err := a.try(http.MethodPost, "/publish", ctHeader("application/json"),
					fmt.Appendf(nil, `{"topic":%q,"data":{"n":%d}}`, topic, n))
				var pr pubResponse
				if err == nil && (ans.Status != http.StatusOK || json.Unmarshal(ans.Body, &pr) != nil || len(pr.Events) != 1) {
					err = fmt.Errorf("publish: %s", ans)
				}
				if err != nil {
					pubErr <- err
					return
				}
				ackMu.Lock()
				acks[topic] = append(acks[topic], acked{pr.Events[0].Seq, pr.Events[0].Epoch, n})
				ackMu.Unlock()
				total.Add(1)
			}
		}()
	}
	stopPublishers := func() {
		close(stop)
		wg.Wait()
		select {
		case err := <-pubErr:
			t.Fatal(err)
		default:
		}
	}
	waitAcks := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for total.Load() < n {
			select {
			case err := <-pubErr:
				t.Fatal(err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %d of %d events acknowledged after 60s", total.Load(), n)
			}
			time.Sleep(5 * time.Millisecond) // polling a counter, not synchronisation
		}
	}
	waitAcks(200)

	// Everything acknowledged from here on must be in the backup.
	ackMu.Lock()
	before := map[string][]acked{}
	for k, v := range acks {
		before[k] = append([]acked(nil), v...)
	}
	ackMu.Unlock()
	backupDir := filepath.Join(t.TempDir(), "backup")
	code, out := runCLI(t, nil, "backup", "--server", a.URL, backupDir)
	if code != 0 || !strings.Contains(out, "backup of node") {
		t.Fatalf("hubbub backup: exit %d: %s", code, out)
	}
	t.Logf("%s(%d events acknowledged when the backup began, %d when it ended)", out, countAcks(before), total.Load())
	waitAcks(total.Load() + 100) // the load goes on after the backup, too
	stopPublishers()
	if code := a.Stop(); code != 0 {
		t.Fatalf("hub a exited %d", code)
	}
	hookMu.Lock()
	from = "b"
	hookMu.Unlock()

	// The hub leaves no checkpoint behind in its data directory.
	if left, _ := filepath.Glob(filepath.Join(a.DataDir, ".backup-*")); len(left) != 0 {
		t.Errorf("checkpoints left in the data directory: %v", left)
	}

	// Restore refuses a non-empty data directory and a damaged backup.
	busy := t.TempDir()
	if err := os.WriteFile(filepath.Join(busy, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := runCLI(t, nil, "restore", "--data", busy, backupDir); code != 1 || !strings.Contains(out, "not empty") {
		t.Errorf("restore into a non-empty directory: exit %d: %s", code, out)
	}

	data := filepath.Join(t.TempDir(), "restored")
	code, out = runCLI(t, nil, "restore", "--data", data, backupDir)
	if code != 0 || !strings.Contains(out, "new epochs") {
		t.Fatalf("hubbub restore: exit %d: %s", code, out)
	}
	b := startHub(t, data, "--allow-private-callbacks")

	var restored = map[string][]wireEvent{}
	for topic, list := range before {
		evs := b.retrieveAll(t, topic)
		restored[topic] = evs
		checkGapFree(t, topic, evs)
		if len(evs) < len(list) {
			t.Fatalf("%s: %d events restored, but %d were acknowledged before the backup", topic, len(evs), len(list))
		}
		for _, ev := range evs { // a prefix of the original log: event seq s is {"n":s}
			if want := fmt.Sprintf(`{"n":%d}`, ev.Seq); string(ev.Data) != want {
				t.Fatalf("%s seq %d: data %s, want %s", topic, ev.Seq, ev.Data, want)
			}
		}
		// A cursor from the old hub gets an "epoch" reset.
		last := list[len(list)-1]
		er, _ := b.getEvents(t, "topic="+url.QueryEscape(topic)+"&after="+url.QueryEscape(fmt.Sprintf("%s:%d", last.epoch, last.seq)))
		if er.Reset == nil || er.Reset.Reason != "epoch" {
			t.Errorf("%s: resuming with the old epoch: reset %+v, want reason epoch", topic, er.Reset)
		}
	}

	// The webhook subscriber: publish a marker on the new hub and wait for
	// it; by then the new hub has delivered everything before it.
	b.publish(t, fmt.Sprintf(`{"topic":%q,"data":{"n":-1}}`, hooked))
	deadline := time.Now().Add(60 * time.Second)
	for {
		hookMu.Lock()
		done := len(hooks) > 0 && hooks[len(hooks)-1] == hook{"b", -1}
		got := append([]hook(nil), hooks...)
		hookMu.Unlock()
		if done {
			seen := map[int]bool{}
			var fromB []int
			for _, h := range got {
				seen[h.n] = true
				if h.from == "b" && h.n != -1 {
					fromB = append(fromB, h.n)
				}
			}
			for _, ev := range restored[hooked] {
				if !seen[int(ev.Seq)] {
					t.Fatalf("the webhook subscriber never received seq %d (of %d restored); the new hub delivered %v", ev.Seq, len(restored[hooked]), fromB)
				}
			}
			for i := 1; i < len(fromB); i++ {
				if fromB[i] != fromB[i-1]+1 {
					t.Fatalf("the new hub's deliveries skip: %v", fromB)
				}
			}
			if strings.Contains(b.Stderr(), "epoch changed") {
				t.Errorf("the restored hub redelivers from the start: its webhook cursor kept the old epoch")
			}
			t.Logf("webhook: %d deliveries from the old hub, %d from the restored one (from n=%v)", len(got)-len(fromB)-1, len(fromB), firstOr(fromB))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the marker was not delivered within 60s; deliveries: %d", len(got))
		}
		time.Sleep(10 * time.Millisecond) // polling, not synchronisation
	}
	b.Stop()

	// --keep-epochs: the same epochs, and the old cursor resumes quietly.
	kept := filepath.Join(t.TempDir(), "kept")
	if code, out := runCLI(t, nil, "restore", "--keep-epochs", "--data", kept, backupDir); code != 0 || !strings.Contains(out, "epochs kept") {
		t.Fatalf("hubbub restore --keep-epochs: exit %d: %s", code, out)
	}
	c := startHub(t, kept)
	for topic, list := range before {
		last := list[len(list)-1]
		er, _ := c.getEvents(t, "topic="+url.QueryEscape(topic)+"&after="+url.QueryEscape(fmt.Sprintf("%s:%d", last.epoch, last.seq)))
		if er.Reset != nil {
			t.Errorf("%s with --keep-epochs: reset %+v", topic, er.Reset)
		}
	}
	c.Stop()

	// A damaged backup is refused before anything is written.
	logs, _ := filepath.Glob(filepath.Join(backupDir, "log", "*"))
	if len(logs) == 0 {
		t.Fatal("the backup has no log files")
	}
	if err := os.WriteFile(logs[0], []byte("damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "never")
	if code, out := runCLI(t, nil, "restore", "--data", target, backupDir); code != 1 || !strings.Contains(out, "differs from the manifest") {
		t.Errorf("restore of a damaged backup: exit %d: %s", code, out)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("a refused restore created %s (%v)", target, err)
	}
}

func countAcks(m map[string][]acked) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

func firstOr(s []int) any {
	if len(s) == 0 {
		return "none"
	}
	return s[0]
}

// TestBackupRefusals: the backup is an admin API, refuses a non-empty
// target before asking, and says what went wrong.
func TestBackupRefusals(t *testing.T) {
	t.Parallel()
	h := startHub(t, "", "--admin-key", "adm1n")
	h.publish(t, `{"topic":"backup/x","data":1}`)
	dir := filepath.Join(t.TempDir(), "b")
	if code, out := runCLI(t, nil, "backup", "--server", h.URL, dir); code != 1 || !strings.Contains(out, "401") {
		t.Errorf("backup without the admin key: exit %d: %s", code, out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a refused backup created %s (%v)", dir, err)
	}
	if code, out := runCLI(t, []string{"HUBBUB_ADMIN_KEY=adm1n"}, "backup", dir, "--server", h.URL); code != 0 {
		t.Fatalf("backup with the admin key: exit %d: %s", code, out)
	}
	if code, out := runCLI(t, []string{"HUBBUB_ADMIN_KEY=adm1n"}, "backup", "--server", h.URL, dir); code != 1 || !strings.Contains(out, "not empty") {
		t.Errorf("backup into a non-empty directory: exit %d: %s", code, out)
	}
	// A page on another origin cannot start one through a local browser.
	hdr := http.Header{"Origin": {"https://evil.example"}, "Authorization": {"Bearer adm1n"}}
	if a := h.do(t, http.MethodPost, "/api/backup", hdr, nil); a.Status != http.StatusForbidden {
		t.Errorf("cross-origin POST /api/backup: %s", a)
	}
	if a := h.do(t, http.MethodGet, "/api/backup", http.Header{"Authorization": {"Bearer adm1n"}}, nil); a.Status != http.StatusMethodNotAllowed {
		t.Errorf("GET /api/backup: %s", a)
	}
	var st struct{ Features []string }
	if err := json.Unmarshal(h.do(t, http.MethodGet, "/api/stats", http.Header{"Authorization": {"Bearer adm1n"}}, nil).Body, &st); err != nil ||
		!strings.Contains(strings.Join(st.Features, ","), "backup") {
		t.Errorf("/api/stats features %v (%v), want backup listed", st.Features, err)
	}
}
