package transport

import (
	"net/http"
	"net/url"
)

// Topic serves GET and HEAD /topics/{topic...}: a topic hubbub hosts, as
// the retrieve formats (JSON, Atom with format=atom or Accept, RSS), with
// the Link headers that let a WebSub subscriber discover the hub (see
// retrieve). The other retrieve parameters (count, after, before,
// filters) work as on /events.
func (h *Handlers) Topic(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	if topic == "" {
		httpError(w, http.StatusBadRequest, "name a topic: /topics/NAME")
		return
	}
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		httpError(w, http.StatusBadRequest, "query string: "+err.Error())
		return
	}
	for _, k := range []string{"topic", "hub.topic", "wait"} {
		v.Del(k)
	}
	v.Set("topic", topic)
	q, err := parseValues(v, "")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if _, ok := h.authorizeRead(w, r, q.topics); !ok {
		return
	}
	h.retrieve(w, r, q)
}
