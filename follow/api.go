package follow

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// View is a followed feed as GET /api/feeds shows it.
type View struct {
	Topic           string    `json:"topic"`
	URL             string    `json:"url"`    // where it is fetched (differs after a 301)
	State           string    `json:"state"`  // following, idle (nobody listened for --feeds-linger) or gone (410)
	Method          string    `json:"method"` // poll, or push (its hub pushes; polled every --feeds-max-interval)
	Hub             string    `json:"hub,omitempty"`
	IntervalSeconds float64   `json:"interval_seconds"`
	LastFetch       time.Time `json:"last_fetch,omitzero"`
	LastChange      time.Time `json:"last_change,omitzero"`
	NextFetch       time.Time `json:"next_fetch,omitzero"`
	LastStatus      int       `json:"last_status,omitempty"`
	LastError       string    `json:"last_error,omitempty"`
	// Subscribers counts live subscribers on this node plus webhook
	// subscriptions (whole deployment).
	Subscribers int    `json:"subscribers"`
	Fetches     uint64 `json:"fetches"`
	Entries     uint64 `json:"entries"`
}

// List returns the feeds this node knows of (followed, or stopped but not
// yet forgotten), in topic order.
func (f *Follower) List() []View {
	type row struct {
		st        State
		listeners int
	}
	f.mu.Lock()
	rows := make([]row, 0, len(f.feeds))
	for _, fd := range f.feeds {
		if fd.st.Started.IsZero() {
			continue // never followed here
		}
		rows = append(rows, row{fd.st, fd.listeners})
	}
	f.mu.Unlock()
	out := make([]View, 0, len(rows))
	for _, r := range rows {
		st := r.st
		v := View{Topic: st.Topic, URL: st.URL, State: "following", Method: st.Method, Hub: st.Hub,
			IntervalSeconds: st.Interval.Seconds(), LastFetch: st.LastFetch, LastChange: st.LastChange,
			NextFetch: st.NextFetch, LastStatus: st.LastStatus, LastError: st.LastError,
			Subscribers: r.listeners, Fetches: st.Fetches, Entries: st.Entries}
		if st.Stopped != "" {
			v.State = st.Stopped
		}
		if f.o.Leases != nil {
			v.Subscribers += f.o.Leases(st.Topic)
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b View) int { return strings.Compare(a.Topic, b.Topic) })
	return out
}

// API serves GET /api/feeds: {"feeds": [View...], "patterns": [...],
// "max": N}. The caller must guard it (admin only).
func (f *Follower) API() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pats := make([]string, len(f.patterns))
		for i, p := range f.patterns {
			pats[i] = p.String()
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]any{"feeds": f.List(), "patterns": pats, "max": f.o.Max})
	})
}
