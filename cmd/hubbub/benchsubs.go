package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// subSpec is what every bench subscriber does: listen to topic on one of
// servers (round robin by its index) until it has events events.
type subSpec struct {
	servers   []string // base URLs, without a trailing slash
	topic     string
	transport string // "sse" or "ws"
	compact   bool
	events    int
	// timeout is passed on to worker processes.
	timeout time.Duration
}

// subPool is a bench's subscribers, running in this process or in worker
// processes (--procs). ready returns once every subscriber is subscribed;
// results once every one has every event (or failed), with the latencies
// and the bytes read.
type subPool interface {
	ready(ctx context.Context) error
	results() (lat []time.Duration, bytes int64, err error)
}

// maxConnecting bounds the subscribers of one process connecting at once.
const maxConnecting = 200

// localPool runs count subscribers, numbered from offset, in this process.
type localPool struct {
	lat      [][]time.Duration
	received atomic.Int64
	wg       sync.WaitGroup
	err      error         // the first error; set before failed is closed
	failed   chan struct{} // closed at the first error
	once     sync.Once
	readyCh  chan struct{}
}

func startLocal(ctx context.Context, spec subSpec, offset, count int) *localPool {
	p := &localPool{lat: make([][]time.Duration, count), readyCh: make(chan struct{}, count), failed: make(chan struct{})}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	params := url.Values{"topic": {spec.topic}}
	if spec.compact {
		params.Set("compact", "1")
	}
	query := "/events?" + params.Encode()
	// At most maxConnecting subscribers of this process are between
	// dialing and subscribed at once: tens of thousands dialing together
	// on a small machine would leave connections idle past the hub's
	// header timeout before their requests are even written.
	connecting := make(chan struct{}, maxConnecting)
	for i := range count {
		p.wg.Go(func() {
			server := spec.servers[(offset+i)%len(spec.servers)]
			select {
			case connecting <- struct{}{}:
			case <-ctx.Done():
				return
			}
			var once sync.Once
			done := func() { once.Do(func() { <-connecting }) }
			defer done()
			ready := func() { done(); p.readyCh <- struct{}{} }
			var err error
			if spec.transport == "ws" {
				err = benchWSSubscriber(ctx, "ws"+strings.TrimPrefix(server, "http")+"/ws", spec.topic, spec.compact, spec.events, &p.lat[i], &p.received, ready)
			} else {
				err = benchSubscriber(ctx, hc, server+query, spec.events, &p.lat[i], &p.received, ready)
			}
			if err != nil && ctx.Err() == nil {
				p.once.Do(func() { p.err = err; close(p.failed) })
			}
		})
	}
	return p
}

func (p *localPool) ready(ctx context.Context) error {
	for range len(p.lat) {
		select {
		case <-p.readyCh:
		case <-p.failed:
			return fmt.Errorf("a subscriber failed: %w", p.err)
		case <-ctx.Done():
			return fmt.Errorf("subscribers did not connect: %w", ctx.Err())
		}
	}
	return nil
}

func (p *localPool) results() ([]time.Duration, int64, error) {
	p.wg.Wait()
	var all []time.Duration
	for _, l := range p.lat {
		all = append(all, l...)
	}
	var err error
	select {
	case <-p.failed:
		err = p.err
	default:
	}
	return all, p.received.Load(), err
}

// workerResult is what a worker process prints when its subscribers are
// done.
type workerResult struct {
	LatencyMicros []int64 `json:"latency_us"`
	Bytes         int64   `json:"bytes"`
	Error         string  `json:"error,omitempty"`
}

// runWorker is `hubbub bench --worker`: it runs count subscribers from
// offset, prints "ready" once all are subscribed, and a workerResult when
// they are done.
func runWorker(ctx context.Context, e env, spec subSpec, offset, count int) error {
	p := startLocal(ctx, spec, offset, count)
	if err := p.ready(ctx); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "ready")
	lat, bytes, err := p.results()
	res := workerResult{LatencyMicros: make([]int64, len(lat)), Bytes: bytes}
	for i, d := range lat {
		res.LatencyMicros[i] = d.Microseconds()
	}
	if err != nil {
		res.Error = err.Error()
	}
	return json.NewEncoder(e.stdout).Encode(res)
}

// procPool runs the subscribers in worker processes: this binary again,
// as `hubbub bench --worker`, each with its share.
type procPool struct {
	cmds []*exec.Cmd
	outs []*bufio.Reader
}

func startProcs(ctx context.Context, e env, spec subSpec, procs, count int) (*procPool, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program to run workers: %w", err)
	}
	p := &procPool{}
	offset := 0
	for i := range procs {
		n := count / procs
		if i < count%procs {
			n++
		}
		args := []string{"bench", "--worker", "--worker-offset", strconv.Itoa(offset), "--subscribers", strconv.Itoa(n),
			"--topic", spec.topic, "--transport", spec.transport, "--events", strconv.Itoa(spec.events),
			"--timeout", spec.timeout.String(), "--server", spec.servers[0]}
		if spec.compact {
			args = append(args, "--compact")
		}
		for _, s := range spec.servers {
			args = append(args, "--subscribe-server", s)
		}
		offset += n
		cmd := exec.CommandContext(ctx, self, args...)
		cmd.Stderr = e.stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			p.kill()
			return nil, fmt.Errorf("start worker: %w", err)
		}
		p.cmds = append(p.cmds, cmd)
		p.outs = append(p.outs, bufio.NewReader(out))
	}
	return p, nil
}

func (p *procPool) kill() {
	for _, c := range p.cmds {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
}

func (p *procPool) ready(ctx context.Context) error {
	for i, r := range p.outs {
		line, err := r.ReadString('\n')
		if err != nil || line != "ready\n" {
			p.kill()
			return fmt.Errorf("worker %d did not get its subscribers ready: %q %v", i, line, err)
		}
	}
	return nil
}

func (p *procPool) results() ([]time.Duration, int64, error) {
	var all []time.Duration
	var bytes int64
	var errs []error
	for i, r := range p.outs {
		var res workerResult
		if err := json.NewDecoder(r).Decode(&res); err != nil && !errors.Is(err, io.EOF) {
			errs = append(errs, fmt.Errorf("worker %d: %w", i, err))
		}
		if err := p.cmds[i].Wait(); err != nil {
			errs = append(errs, fmt.Errorf("worker %d: %w", i, err))
		}
		if res.Error != "" {
			errs = append(errs, fmt.Errorf("worker %d: %s", i, res.Error))
		}
		for _, us := range res.LatencyMicros {
			all = append(all, time.Duration(us)*time.Microsecond)
		}
		bytes += res.Bytes
	}
	return all, bytes, errors.Join(errs...)
}
