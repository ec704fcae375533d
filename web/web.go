// Package web serves hubbub's browser side from assets embedded in the
// binary: the dashboard (/), the live wall (/wall), the live globe
// (/globe), the API explorer (/explorer), the chat example
// (/examples/chat), the JavaScript client (/client.js, from the npm
// package in web/client) and their static files (/static/...). Nothing is built or fetched at run time, and the pages load
// nothing from other hosts except the pictures that events name.
//
// The pages only use what the hub serves anyway: its wire protocol
// (POST /publish, GET /events, GET /ws) and, on the dashboard, the admin
// API (GET /api/stats, and /api/nodes and /api/subscriptions when the
// stats list them in "features") and the hub's own $sys/stats/* topics;
// they have no server API of their own.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed pages static client/client.js
var files embed.FS

// clientFile is the JavaScript client in its npm package directory
// (web/client, published as hubbub-client); the hub serves it as
// /client.js and /static/client.js.
const clientFile = "client/client.js"

// Options configure the UI.
type Options struct {
	// Version is shown in the pages' footers.
	Version string
	// FrameAncestors are the CSP frame-ancestors sources allowed to show
	// the wall and the globe in a frame ('self', *, or origins; validated by the config
	// package). Empty: 'none'. The dashboard and explorer are never
	// framable: they hold forms (the admin key, publishing) a framing page
	// could trick a visitor into using.
	FrameAncestors []string
}

// UI serves the pages and their assets.
type UI struct {
	pages  map[string]*asset // by page file name
	static map[string]*asset // by path under static/
	// wallFrames is the wall's and the globe's frame-ancestors value.
	wallFrames string
}

type asset struct {
	body  []byte
	ctype string
	etag  string
}

// csp allows only the hub's own scripts, styles and connections; pictures
// may come from anywhere (the wall shows what events link to). The
// frame-ancestors directive follows it.
const csp = "default-src 'self'; img-src * data: blob:; connect-src 'self'; script-src 'self'; " +
	"style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors "

// New reads the embedded assets. It panics if they are broken, which is a
// build error, not a run-time condition.
func New(opts Options) *UI {
	if opts.Version == "" {
		opts.Version = "dev"
	}
	u := &UI{pages: map[string]*asset{}, static: map[string]*asset{}, wallFrames: "'none'"}
	var frames []string
	for _, f := range opts.FrameAncestors {
		if f != "" && !strings.ContainsAny(f, " \t\r\n;,\"") { // never a second directive
			frames = append(frames, f)
		}
	}
	if len(frames) > 0 {
		u.wallFrames = strings.Join(frames, " ")
	}
	load := func(dir string, into map[string]*asset, edit func([]byte) []byte) {
		err := fs.WalkDir(files, dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := files.ReadFile(p)
			if err != nil {
				return err
			}
			into[strings.TrimPrefix(p, dir+"/")] = newAsset(p, edit(b))
			return nil
		})
		if err != nil {
			panic("web: embedded assets: " + err.Error())
		}
	}
	version := []byte(html.EscapeString(opts.Version))
	load("pages", u.pages, func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("{{VERSION}}"), version) })
	load("static", u.static, func(b []byte) []byte { return b })
	b, err := files.ReadFile(clientFile)
	if err != nil {
		panic("web: embedded assets: " + err.Error())
	}
	u.static["client.js"] = newAsset(clientFile, b)
	return u
}

func newAsset(name string, body []byte) *asset {
	ct := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) { // not every system's MIME table knows these
	case ".js":
		ct = "text/javascript; charset=utf-8"
	case ".css":
		ct = "text/css; charset=utf-8"
	case ".html":
		ct = "text/html; charset=utf-8"
	case ".svg":
		ct = "image/svg+xml"
	case ".png":
		ct = "image/png"
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	sum := sha256.Sum256(body)
	return &asset{body: body, ctype: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
}

// Register adds the UI's routes to mux: GET /, /wall, /globe, /explorer,
// /examples/chat, /client.js and /static/.
func (u *UI) Register(mux *http.ServeMux) {
	mux.Handle("GET /{$}", u.page("index.html", "'none'"))
	mux.Handle("GET /wall", u.page("wall.html", u.wallFrames))
	mux.Handle("GET /globe", u.page("globe.html", u.wallFrames))
	mux.Handle("GET /explorer", u.page("explorer.html", "'none'"))
	mux.Handle("GET /examples/chat", u.page("chat.html", "'none'"))
	mux.HandleFunc("GET /client.js", func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, u.static["client.js"])
	})
	mux.HandleFunc("GET /static/{path...}", func(w http.ResponseWriter, r *http.Request) {
		a := u.static[r.PathValue("path")]
		if a == nil {
			http.NotFound(w, r)
			return
		}
		serve(w, r, a)
	})
}

// page serves an embedded page with the CSP, framable by frames (a
// frame-ancestors value). X-Frame-Options, for browsers without CSP
// frame-ancestors, says DENY or SAMEORIGIN where it can say as much, and
// is left out for a list of origins it cannot express.
func (u *UI) page(name, frames string) http.Handler {
	a := u.pages[name]
	if a == nil {
		panic("web: no embedded page " + name)
	}
	policy := csp + frames
	xfo := ""
	switch frames {
	case "'none'":
		xfo = "DENY"
	case "'self'":
		xfo = "SAMEORIGIN"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", policy)
		h.Set("Referrer-Policy", "no-referrer")
		if xfo != "" {
			h.Set("X-Frame-Options", xfo)
		}
		serve(w, r, a)
	})
}

// serve answers an asset; the ETag lets browsers revalidate cheaply, and
// no-cache makes them do so, so a new binary's assets are seen at once.
func serve(w http.ResponseWriter, r *http.Request, a *asset) {
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
