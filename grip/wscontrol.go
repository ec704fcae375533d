package grip

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/coder/websocket"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/event"
	"github.com/hubbub/hubbub/grip/wsevents"
	"github.com/hubbub/hubbub/hub"
)

// GRIP WebSocket control messages: a TEXT event from the origin of
// "c:" and a JSON object, with a type:
//
//	{"type":"subscribe","channel":"room"}    deliver the channel's ws-message publishes
//	{"type":"unsubscribe","channel":"room"}  stop
//	{"type":"detach"}                        stop talking to the origin: client messages are dropped
//	{"type":"keep-alive","content":"{}","timeout":30[,"message-type":"text|binary|ping|pong","mode":"idle|interval"]}
//	                                         send content when the connection was idle that long
//	                                         (mode interval: every timeout); without content: stop
//
// Other types (Pushpin's session and delayed-send extensions) are ignored.
type wsControl struct {
	Type        string  `json:"type"`
	Channel     string  `json:"channel"`
	Content     *string `json:"content"`
	ContentBin  []byte  `json:"content-bin"`
	MessageType string  `json:"message-type"`
	Timeout     int     `json:"timeout"`
	Mode        string  `json:"mode"`
}

// Keep-alive timeouts are clamped to this range.
const (
	wsMinKeepAliveTimeout = time.Second
	wsMaxKeepAliveTimeout = time.Hour
)

// wsKeepAlive is a keep-alive the origin set: what to send, and when.
type wsKeepAlive struct {
	typ      websocket.MessageType
	ping     bool
	content  []byte
	every    time.Duration
	interval bool // every period, rather than after every idle period
}

// control carries out one control message. A bad one is logged and
// ignored: it is the origin's mistake, not the client's.
func (wc *wsConn) control(msg []byte) {
	var c wsControl
	if err := json.Unmarshal(msg, &c); err != nil {
		wc.p.log.Warn("grip websocket: control message is not JSON", "err", err)
		return
	}
	switch c.Type {
	case "subscribe":
		wc.subscribe(c.Channel)
	case "unsubscribe":
		wc.mu.Lock()
		cancel := wc.channels[c.Channel]
		delete(wc.channels, c.Channel)
		wc.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	case "detach":
		wc.mu.Lock()
		wc.detached = true
		wc.queue, wc.queued = nil, 0
		wc.mu.Unlock()
		signal(wc.room)
		signal(wc.wake)
	case "keep-alive":
		ka, err := parseKeepAlive(c)
		if err != nil {
			wc.p.log.Warn("grip websocket: bad keep-alive control message", "err", err)
			return
		}
		wc.mu.Lock()
		wc.ka = ka
		wc.mu.Unlock()
		signal(wc.kaChange)
		wc.kaStart.Do(func() { // on the origin loop's goroutine: before wg.Wait
			wc.wg.Add(1)
			go wc.keepAliveLoop()
		})
	default:
		wc.p.log.Debug("grip websocket: control message type not supported, ignored", "type", c.Type)
	}
}

func parseKeepAlive(c wsControl) (*wsKeepAlive, error) {
	if c.Content == nil && c.ContentBin == nil {
		return nil, nil // keep-alive off
	}
	ka := &wsKeepAlive{typ: websocket.MessageText, content: c.ContentBin}
	if c.Content != nil {
		ka.content = []byte(*c.Content)
	}
	switch c.MessageType {
	case "", "text":
	case "binary":
		ka.typ = websocket.MessageBinary
	case "ping", "pong": // the library sends no unasked pongs: both ping
		ka.ping = true
	default:
		return nil, errors.New(`message-type must be "text", "binary", "ping" or "pong"`)
	}
	switch c.Mode {
	case "", "idle":
	case "interval":
		ka.interval = true
	default:
		return nil, errors.New(`mode must be "idle" or "interval"`)
	}
	if c.Timeout <= 0 {
		return nil, errors.New("timeout must be a positive number of seconds")
	}
	secs := min(c.Timeout, int(wsMaxKeepAliveTimeout/time.Second)) // no overflow below
	ka.every = max(time.Duration(secs)*time.Second, wsMinKeepAliveTimeout)
	return ka, nil
}

// subscribe makes the connection a hub subscriber of channel (a topic),
// live from now; its pump delivers the channel's publishes. The hub
// subscription is in place when subscribe returns, so what the origin
// publishes after its answer reaches the connection.
func (wc *wsConn) subscribe(channel string) {
	if err := event.ValidateTopic(channel); err != nil || event.IsReserved(channel) {
		wc.p.log.Warn("grip websocket: subscribe to an invalid channel ignored", "channel", channel, "err", err)
		return
	}
	wc.mu.Lock()
	if _, ok := wc.channels[channel]; ok {
		wc.mu.Unlock()
		return
	}
	if len(wc.channels) >= WSMaxChannels {
		wc.mu.Unlock()
		wc.p.obs.Limited(LimitWSChannels)
		wc.p.log.Warn("grip websocket: subscribe ignored: the connection has the most channels allowed", "channel", channel, "max", WSMaxChannels)
		return
	}
	ctx, cancel := context.WithCancel(wc.ctx)
	wc.channels[channel] = cancel
	wc.mu.Unlock()
	sub, err := wc.p.cfg.Hub.Subscribe(ctx, hub.SubscribeRequest{Topics: []string{channel}, Transport: NameWS})
	if err != nil {
		wc.p.log.Warn("grip websocket: subscribe failed", "channel", channel, "err", err)
		wc.mu.Lock()
		delete(wc.channels, channel)
		wc.mu.Unlock()
		cancel()
		return
	}
	wc.wg.Add(1)
	go wc.pump(ctx, sub)
}

// pump delivers one channel's publishes (their ws-message format) to the
// client until ctx ends (unsubscribe, the connection's end).
func (wc *wsConn) pump(ctx context.Context, sub *hub.Subscription) {
	defer wc.wg.Done()
	defer sub.Close()
	for {
		msgs, err := sub.Next(ctx, nil)
		if err != nil {
			switch {
			case errors.Is(err, broker.ErrSlow):
				wc.p.obs.SlowDisconnect(NameWS)
				wc.closeClient(closeSlow, "too slow: reconnect")
			case ctx.Err() == nil:
				wc.p.log.Warn("grip websocket: subscription failed", "err", err)
				wc.closeClient(websocket.StatusInternalError, "the hub failed")
			}
			return
		}
		// What is ready goes out in one socket write. A close action
		// waits until after uncork: closing waits for the client's answer
		// to a close frame, which may be held in the batch.
		n, closeWith := 0, (*WSMessage)(nil)
		ok := true
		wc.batch.Lock()
		wc.wire.Cork()
		for _, m := range msgs {
			if m.Item == nil {
				continue
			}
			f := wc.p.renders.get(m.Item).Formats.WSMessage
			switch {
			case f == nil:
				continue
			case f.Action == ActionClose:
				closeWith = f
			case f.ContentBin != nil:
				ok = wc.write(websocket.MessageBinary, f.ContentBin)
			case f.Content != nil:
				ok = wc.write(websocket.MessageText, []byte(*f.Content))
			default:
				continue
			}
			if !ok || closeWith != nil {
				break
			}
			n++
		}
		if err := wc.wire.Uncork(); err != nil && ok {
			ok = false
			wc.clientGone(wsevents.Event{Type: wsevents.Disconnect})
		}
		wc.batch.Unlock()
		wc.p.obs.Delivered(NameWS, n)
		if closeWith != nil && ok {
			wc.closeClient(clientCloseCode(uint16(closeWith.Code)), closeWith.Reason)
		}
		if !ok || closeWith != nil {
			return
		}
	}
}

// closeSlow closes a connection whose subscription fell too far behind
// (as hubbub's own WebSocket transport does).
const closeSlow websocket.StatusCode = 4001

// keepAliveLoop sends the origin's keep-alive (control message
// keep-alive) while one is set.
func (wc *wsConn) keepAliveLoop() {
	defer wc.wg.Done()
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		wc.mu.Lock()
		ka := wc.ka
		wc.mu.Unlock()
		var fire <-chan time.Time
		if ka != nil {
			wait := ka.every
			if !ka.interval {
				wait -= time.Since(time.Unix(0, wc.lastOut.Load()))
			}
			t.Reset(max(wait, 0))
			fire = t.C
		}
		select {
		case <-wc.ctx.Done():
			return
		case <-wc.kaChange:
			t.Stop()
			continue
		case <-fire:
		}
		if !ka.interval && time.Since(time.Unix(0, wc.lastOut.Load())) < ka.every {
			continue // a message went out meanwhile
		}
		if ka.ping {
			ctx, cancel := context.WithTimeout(wc.ctx, wsWriteTimeout)
			_ = wc.c.Ping(ctx)
			cancel()
			wc.lastOut.Store(time.Now().UnixNano())
		} else if !wc.write(ka.typ, bytes.Clone(ka.content)) {
			return
		}
	}
}
