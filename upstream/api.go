package upstream

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"

	"github.com/hubbub/hubbub/event"
)

// API serves the management API under /api/upstreams; the caller must
// guard it (admin only):
//
//   - POST /api/upstreams, a form or JSON {hub, topic, into}: Add; 201
//     with the upstream (200 if it already existed and was pending or
//     active), 400 for bad input.
//   - GET /api/upstreams: {"upstreams": [...]}.
//   - DELETE /api/upstreams/{id}: Remove; 202, or 404.
//
// Secrets are never shown: "signed" tells there is one.
func (m *Manager) API() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/upstreams", m.apiAdd)
	mux.HandleFunc("GET /api/upstreams", func(w http.ResponseWriter, r *http.Request) {
		list, err := m.List(r.Context())
		if err != nil {
			m.log.Error("upstream: list failed", "err", err)
			http.Error(w, "listing upstreams failed", http.StatusServiceUnavailable)
			return
		}
		out := make([]view, len(list))
		for i, u := range list {
			out[i] = viewOf(u)
			out[i].Callback = m.Callback(u)
		}
		writeJSON(w, http.StatusOK, map[string]any{"upstreams": out})
	})
	// DELETE answers 202 with {"id", "state"}: "unsubscribing" until the
	// remote hub verifies the unsubscription, or "removed" when the
	// upstream is gone already (it had failed or been denied).
	mux.HandleFunc("DELETE /api/upstreams/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		ok, err := m.Remove(r.Context(), id)
		switch {
		case err != nil:
			m.log.Error("upstream: remove failed", "err", err)
			http.Error(w, "remove failed", http.StatusServiceUnavailable)
		case !ok:
			http.Error(w, "no such upstream", http.StatusNotFound)
		default:
			state := "removed"
			if u, ok, err := m.st.Get(r.Context(), id); err == nil && ok {
				state = u.State
			}
			writeJSON(w, http.StatusAccepted, map[string]string{"id": id, "state": state})
		}
	})
	return mux
}

// view is an Upstream as the API shows it.
type view struct {
	Upstream
	Callback string `json:"callback"`
	Signed   bool   `json:"signed"`
}

func viewOf(u Upstream) view {
	v := view{Upstream: u, Signed: u.Secret != ""}
	v.Secret, v.Token = "", "" // the token is in Callback
	return v
}

func (m *Manager) apiAdd(w http.ResponseWriter, r *http.Request) {
	var s Spec
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
		b, err := io.ReadAll(r.Body)
		if err == nil {
			err = json.Unmarshal(b, &s)
		}
		if err != nil {
			http.Error(w, "bad JSON body: want {hub, topic, into}", http.StatusBadRequest)
			return
		}
	} else {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form body", http.StatusBadRequest)
			return
		}
		s = Spec{Hub: r.PostForm.Get("hub"), Topic: r.PostForm.Get("topic"), Into: r.PostForm.Get("into")}
	}
	_, existed, _ := m.st.Get(r.Context(), ID(s.Hub, s.Topic, s.Into))
	u, err := m.Add(r.Context(), s)
	if err != nil {
		if event.IsValidation(err) {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		m.log.Error("upstream: add failed", "err", err)
		http.Error(w, "add failed", http.StatusServiceUnavailable)
		return
	}
	code := http.StatusCreated
	if existed {
		code = http.StatusOK
	}
	v := viewOf(u)
	v.Callback = m.Callback(u)
	writeJSON(w, code, v)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
