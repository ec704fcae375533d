// Package config is the single source of truth for hubbub's server
// configuration.
//
// Every setting is one field of [Config]. Its struct tags name the
// command-line flag, the environment variable and the YAML key, and carry a
// one-line description; [Load], the --help usage, [Reference] and
// [Config.LogValue] are all driven from those tags by reflection, so adding a
// setting is one line and the documentation cannot drift.
//
// Sources, in increasing precedence: [Default], the YAML file named by
// --config or HUBBUB_CONFIG, HUBBUB_* environment variables, flags.
package config

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the server configuration. Supported field kinds are string,
// []string, int, int64, float64, time.Duration and bool. Tags: flag (name without
// dashes), env, yaml, help, and secret:"true" for values that must never be
// logged.
type Config struct {
	Listen                string        `flag:"listen" env:"HUBBUB_LISTEN" yaml:"listen" help:"address (host:port) the HTTP server listens on"`
	Store                 string        `flag:"store" env:"HUBBUB_STORE" yaml:"store" help:"where events live: empty for the embedded store in --data; redis://HOST:PORT/DB (rediss:// for TLS) to share one Redis between nodes; redis+cluster://HOST:PORT?addr=HOST2:PORT2 for a Redis Cluster"`
	RedisPrefix           string        `flag:"redis-prefix" env:"HUBBUB_REDIS_PREFIX" yaml:"redis_prefix" help:"prefix of every Redis key and channel (with --store redis://...); nodes sharing a deployment use the same one"`
	NodeID                string        `flag:"node-id" env:"HUBBUB_NODE_ID" yaml:"node_id" help:"this node's name in logs, metrics and /api/nodes; empty = hostname:port of --listen (hostname:pid when the port is 0)"`
	Data                  string        `flag:"data" env:"HUBBUB_DATA" yaml:"data" help:"directory of the embedded store"`
	PublicURL             string        `flag:"public-url" env:"HUBBUB_PUBLIC_URL" yaml:"public_url" help:"external base URL of the hub; empty = derived from each request"`
	PublishKeys           []string      `flag:"publish-key" env:"HUBBUB_PUBLISH_KEYS" yaml:"publish_keys" secret:"true" help:"key that authorizes publishing, sent as Authorization: Bearer KEY (flag repeatable, env comma-separated); with no key and no JWT verification, only local clients (loopback address and Host, no forwarding headers) may publish; others get 401 without a valid key"`
	AdminKey              string        `flag:"admin-key" env:"HUBBUB_ADMIN_KEY" yaml:"admin_key" secret:"true" help:"key for the admin API (/api/...) and the hub's own $sys/ topics, sent as Authorization: Bearer KEY (tokens with admin:true also qualify); empty = local clients only (loopback address and Host, no forwarding headers); others get 401"`
	JWTSecret             string        `flag:"jwt-secret" env:"HUBBUB_JWT_SECRET" yaml:"jwt_secret" secret:"true" help:"HMAC secret (at least 32 bytes) that verifies HS256/384/512 tokens; empty = no HMAC tokens"`
	JWTPublicKey          string        `flag:"jwt-public-key" env:"HUBBUB_JWT_PUBLIC_KEY" yaml:"jwt_public_key" help:"PEM file of the public key (RSA, ECDSA or Ed25519) that verifies RS/PS/ES/EdDSA tokens; empty = none"`
	JWKSURL               string        `flag:"jwks-url" env:"HUBBUB_JWKS_URL" yaml:"jwks_url" help:"URL of a JWKS key set that verifies RS/PS/ES/EdDSA tokens, fetched at start and refreshed hourly (and on an unknown kid); empty = none"`
	JWTIssuer             string        `flag:"jwt-issuer" env:"HUBBUB_JWT_ISSUER" yaml:"jwt_issuer" help:"the iss a token must carry; empty = any (a token with another gets 401)"`
	JWTAudience           string        `flag:"jwt-audience" env:"HUBBUB_JWT_AUDIENCE" yaml:"jwt_audience" help:"an aud a token must carry; empty = any (a token without it gets 401)"`
	Private               []string      `flag:"private" env:"HUBBUB_PRIVATE" yaml:"private" help:"pattern of private topics: reading them needs a token whose subscribe patterns cover them, else 401 (no or bad token) or 403 (not covered) (flag repeatable, env comma-separated); none = every topic but $sys/ is public"`
	SubscribeAuth         string        `flag:"subscribe-auth" env:"HUBBUB_SUBSCRIBE_AUTH" yaml:"subscribe_auth" help:"optional: only --private topics need a token to read; required: every topic does (401 without one)"`
	TrustedProxies        []string      `flag:"trusted-proxy" env:"HUBBUB_TRUSTED_PROXIES" yaml:"trusted_proxies" help:"CIDR or address of a reverse proxy whose X-Forwarded-For/Forwarded/X-Real-IP names the client, for the local rule, limits and logs (flag repeatable, env comma-separated); none = the peer address is the client, and a request with forwarding headers is never local"`
	MaxBody               int64         `flag:"max-body" env:"HUBBUB_MAX_BODY" yaml:"max_body" help:"publish request body limit, in bytes"`
	ReadTimeout           time.Duration `flag:"read-timeout" env:"HUBBUB_READ_TIMEOUT" yaml:"read_timeout" help:"how long a request body (publish, WebSub, admin API, upstream callbacks) may take to arrive; a slower one gets 408 and its connection is closed; streams and WebSockets are not affected; 0 = no limit"`
	IdleTimeout           time.Duration `flag:"idle-timeout" env:"HUBBUB_IDLE_TIMEOUT" yaml:"idle_timeout" help:"how long an idle keep-alive connection is kept open between requests"`
	MaxConnsPerIP         int           `flag:"max-conns-per-ip" env:"HUBBUB_MAX_CONNS_PER_IP" yaml:"max_conns_per_ip" help:"requests one client address may have open at once, streams and WebSockets included; beyond it HTTP gets 429 with Retry-After and a WebSocket is closed at once with code 1008; 0 = no limit"`
	PublishRate           float64       `flag:"publish-rate" env:"HUBBUB_PUBLISH_RATE" yaml:"publish_rate" help:"publish requests (POST /publish, WebSocket publish ops) per second per publisher (bearer key, else client address), bursts of one second's worth allowed; beyond it 429 with Retry-After, or a rate_limited error op; 0 = no limit"`
	MaxResponseBytes      int           `flag:"max-response-bytes" env:"HUBBUB_MAX_RESPONSE_BYTES" yaml:"max_response_bytes" help:"most bytes of one retrieve or long-poll answer and of one catch-up page of a live subscriber; past it the answer holds fewer events than count= and its cursor pages on (one event always goes, even a larger one)"`
	HistoryMaxEvents      int           `flag:"history-max-events" env:"HUBBUB_HISTORY_MAX_EVENTS" yaml:"history_max_events" help:"events of history kept per topic; 0 = no count limit"`
	HistoryMaxAge         time.Duration `flag:"history-max-age" env:"HUBBUB_HISTORY_MAX_AGE" yaml:"history_max_age" help:"how long history is kept; 0 = no age limit"`
	Heartbeat             time.Duration `flag:"heartbeat" env:"HUBBUB_HEARTBEAT" yaml:"heartbeat" help:"interval of SSE comment / NDJSON heartbeats on idle streams (at least 1s)"`
	SubscriberBuffer      int           `flag:"subscriber-buffer" env:"HUBBUB_SUBSCRIBER_BUFFER" yaml:"subscriber_buffer" help:"events queued per live subscriber before it is cut off"`
	PollTimeout           time.Duration `flag:"poll-timeout" env:"HUBBUB_POLL_TIMEOUT" yaml:"poll_timeout" help:"default long-poll timeout"`
	PollMaxTimeout        time.Duration `flag:"poll-max-timeout" env:"HUBBUB_POLL_MAX_TIMEOUT" yaml:"poll_max_timeout" help:"largest long-poll timeout a client may ask for"`
	SSERetry              time.Duration `flag:"sse-retry" env:"HUBBUB_SSE_RETRY" yaml:"sse_retry" help:"reconnect delay sent once to SSE clients as the retry: field"`
	LogLevel              string        `flag:"log-level" env:"HUBBUB_LOG_LEVEL" yaml:"log_level" help:"log level: debug, info, warn or error"`
	LogFormat             string        `flag:"log-format" env:"HUBBUB_LOG_FORMAT" yaml:"log_format" help:"log format: text or json"`
	Coalesce              []string      `flag:"coalesce" env:"HUBBUB_COALESCE" yaml:"coalesce" help:"coalescing window for topics a pattern matches, as PATTERN=DURATION (e.g. docs/**=2s): updates to one key within it reach long-poll and webhook subscribers as one, the latest (flag repeatable, env comma-separated)"`
	WSOrigins             []string      `flag:"ws-origin" env:"HUBBUB_WS_ORIGINS" yaml:"ws_origins" help:"browser origin (host pattern, e.g. app.example.com or *.example.com) allowed to open WebSockets besides the hub's own host (flag repeatable, env comma-separated)"`
	WebSubLease           time.Duration `flag:"websub-lease" env:"HUBBUB_WEBSUB_LEASE" yaml:"websub_lease" help:"lease of a webhook subscription that asks for none"`
	WebSubMinLease        time.Duration `flag:"websub-min-lease" env:"HUBBUB_WEBSUB_MIN_LEASE" yaml:"websub_min_lease" help:"shortest lease granted (shorter requests are raised to it)"`
	WebSubMaxLease        time.Duration `flag:"websub-max-lease" env:"HUBBUB_WEBSUB_MAX_LEASE" yaml:"websub_max_lease" help:"longest lease granted (longer requests are lowered to it)"`
	WebSubSignature       string        `flag:"websub-signature" env:"HUBBUB_WEBSUB_SIGNATURE" yaml:"websub_signature" help:"X-Hub-Signature algorithm when a subscriber names none: sha1 (for PuSH 0.3/0.4 subscribers), sha256, sha384 or sha512"`
	FetchMinInterval      time.Duration `flag:"fetch-min-interval" env:"HUBBUB_FETCH_MIN_INTERVAL" yaml:"fetch_min_interval" help:"thin pings fetch one topic URL at most once per this interval: pings within it are answered as usual and make one later fetch; 0 = no limit"`
	AllowPrivateCallbacks bool          `flag:"allow-private-callbacks" env:"HUBBUB_ALLOW_PRIVATE_CALLBACKS" yaml:"allow_private_callbacks" help:"let webhook callbacks and thin-ping fetches reach loopback and private addresses (off: guards against SSRF)"`
	WebhookConcurrency    int           `flag:"webhook-concurrency" env:"HUBBUB_WEBHOOK_CONCURRENCY" yaml:"webhook_concurrency" help:"webhook deliveries running at once on this node"`
	WebhookRetryBase      time.Duration `flag:"webhook-retry-base" env:"HUBBUB_WEBHOOK_RETRY_BASE" yaml:"webhook_retry_base" help:"delay before the first retry of a failed webhook delivery, verification or feed fetch; it doubles with each failure in a row (equal jitter: drawn from the upper half), up to --webhook-retry-max; a callback's Retry-After replaces it"`
	WebhookRetryMax       time.Duration `flag:"webhook-retry-max" env:"HUBBUB_WEBHOOK_RETRY_MAX" yaml:"webhook_retry_max" help:"longest delay between retries of a failing webhook delivery (a Retry-After is capped at it too); at least --webhook-retry-base"`
	WebhookSuspendAfter   time.Duration `flag:"webhook-suspend-after" env:"HUBBUB_WEBHOOK_SUSPEND_AFTER" yaml:"webhook_suspend_after" help:"a subscription whose deliveries have failed without a success for this long is suspended: no more tries until POST /api/subscriptions/{id}/resume (its lease still ends as usual); 0 = never suspend"`
	WebSubMaxPerHost      int           `flag:"websub-max-per-host" env:"HUBBUB_WEBSUB_MAX_PER_HOST" yaml:"websub_max_per_host" help:"webhook subscriptions allowed for callbacks on one host name, across topics; a new one over it gets 403; 0 = no limit"`
	WebSubRate            int           `flag:"websub-subscribe-rate" env:"HUBBUB_WEBSUB_SUBSCRIBE_RATE" yaml:"websub_subscribe_rate" help:"WebSub subscribe and unsubscribe requests per second from one client address, with bursts of twice that; over it a request gets 429 with Retry-After; 0 = no limit"`
	TaskLease             time.Duration `flag:"task-lease" env:"HUBBUB_TASK_LEASE" yaml:"task_lease" help:"how long a node holds a claimed task (webhook delivery, verification, upstream renewal) without renewing it; with --store redis, how soon another node takes over the tasks of a node that died"`
	Upstreams             []string      `flag:"upstream" env:"HUBBUB_UPSTREAMS" yaml:"upstreams" help:"another hub's topic to subscribe to and republish into a local topic, as HUB_URL,TOPIC_URL,INTO (flag repeatable; env: triples joined with commas); needs --public-url"`
	Feeds                 []string      `flag:"feeds" env:"HUBBUB_FEEDS" yaml:"feeds" help:"outside feed URLs hubbub follows while someone subscribes to them, as URL patterns (https://*.example.com/**; * = any public URL); none = follow nothing (flag repeatable, env comma-separated)"`
	FeedsMax              int           `flag:"feeds-max" env:"HUBBUB_FEEDS_MAX" yaml:"feeds_max" help:"most outside feeds followed at once on this node; a subscription to one more is refused with 429"`
	FeedsLinger           time.Duration `flag:"feeds-linger" env:"HUBBUB_FEEDS_LINGER" yaml:"feeds_linger" help:"how long an outside feed is still followed after its last subscriber left (a webhook subscription's lease counts as listening)"`
	FeedsMinInterval      time.Duration `flag:"feeds-min-interval" env:"HUBBUB_FEEDS_MIN_INTERVAL" yaml:"feeds_min_interval" help:"shortest interval between polls of an outside feed (polls adapt: more often while it changes, less while it does not)"`
	FeedsMaxInterval      time.Duration `flag:"feeds-max-interval" env:"HUBBUB_FEEDS_MAX_INTERVAL" yaml:"feeds_max_interval" help:"longest interval between polls of an outside feed; a feed whose hub pushes is polled this often, as a safety net"`
	FeedsHostConcurrency  int           `flag:"feeds-host-concurrency" env:"HUBBUB_FEEDS_HOST_CONCURRENCY" yaml:"feeds_host_concurrency" help:"outside-feed fetches in flight per host"`
	FeedsHostInterval     time.Duration `flag:"feeds-host-interval" env:"HUBBUB_FEEDS_HOST_INTERVAL" yaml:"feeds_host_interval" help:"outside-feed fetches of one host begin at least this far apart; 0 = no spacing"`
	ShutdownTimeout       time.Duration `flag:"shutdown-timeout" env:"HUBBUB_SHUTDOWN_TIMEOUT" yaml:"shutdown_timeout" help:"how long a graceful shutdown waits for connections to drain"`
	ShutdownDelay         time.Duration `flag:"shutdown-delay" env:"HUBBUB_SHUTDOWN_DELAY" yaml:"shutdown_delay" help:"on SIGTERM, how long /readyz answers 503 while the hub keeps serving, so a load balancer stops sending new clients before streams end; 0 = stop at once"`
	TLSCert               string        `flag:"tls-cert" env:"HUBBUB_TLS_CERT" yaml:"tls_cert" help:"PEM certificate chain file; with --tls-key the hub serves HTTPS (HTTP/2 and HTTP/1.1) instead of HTTP, and re-reads both files when they change, keeping the old pair if the new one is bad; empty = plain HTTP"`
	TLSKey                string        `flag:"tls-key" env:"HUBBUB_TLS_KEY" yaml:"tls_key" help:"PEM private key file of --tls-cert"`
	AdminListen           string        `flag:"admin-listen" env:"HUBBUB_ADMIN_LISTEN" yaml:"admin_listen" help:"second address (host:port) that alone serves the dashboard (/), /api/... and /metrics, which the main listener then answers with 404; empty = all on --listen"`
	MetricsKey            string        `flag:"metrics-key" env:"HUBBUB_METRICS_KEY" yaml:"metrics_key" secret:"true" help:"key that /metrics needs as Authorization: Bearer KEY (401 without it); empty = /metrics is open to anyone who reaches it"`
	PProf                 bool          `flag:"pprof" env:"HUBBUB_PPROF" yaml:"pprof" help:"serve Go's profiler at /debug/pprof/ (admin only, and on the --admin-listen listener when there is one): go tool pprof -http=: 'http://HUB/debug/pprof/profile?seconds=30' with the admin key; off = 404"`
	CORSOrigins           []string      `flag:"cors-origin" env:"HUBBUB_CORS_ORIGINS" yaml:"cors_origins" help:"web origin (scheme://host[:port], or * for any) whose pages may call the hub: answered with CORS headers (credentials only for listed origins), and allowed to POST /publish and /hub, which other foreign origins get 403 for (flag repeatable, env comma-separated); none = no CORS headers"`
	FrameAncestors        []string      `flag:"frame-ancestors" env:"HUBBUB_FRAME_ANCESTORS" yaml:"frame_ancestors" help:"who may show the live wall (/wall) and globe (/globe) in a frame, as CSP frame-ancestors sources: 'self', an origin (https://cms.example.com), an origin with a wildcard host (https://*.example.com), or * for any site (flag repeatable, env comma-separated); none = no site may frame them; the dashboard, explorer and chat example never may"`
	GripListen            string        `flag:"grip-listen" env:"HUBBUB_GRIP_LISTEN" yaml:"grip_listen" help:"address (host:port) of the GRIP proxy listener (Pushpin compatible): every request to it is proxied to --grip-origin (or a --grip-route), whose GRIP instructions (Grip-Hold ...) make hubbub hold the connection as a subscriber; needs --grip-sig-key; empty = no GRIP proxy"`
	GripOrigin            string        `flag:"grip-origin" env:"HUBBUB_GRIP_ORIGIN" yaml:"grip_origin" help:"origin (http://HOST:PORT) the GRIP listener proxies requests to that no --grip-route matches; empty = those get 502"`
	GripRoutes            []string      `flag:"grip-route" env:"HUBBUB_GRIP_ROUTES" yaml:"grip_routes" help:"origin for a path prefix of the GRIP listener, as /PREFIX=http://HOST:PORT (the longest matching prefix wins; the path is passed on unchanged) (flag repeatable, env comma-separated)"`
	GripSigKey            string        `flag:"grip-sig-key" env:"HUBBUB_GRIP_SIG_KEY" yaml:"grip_sig_key" secret:"true" help:"HS256 secret (at least 32 bytes; base64:... for binary) that signs the Grip-Sig JWT (iss pushpin) sent to the origin, Pushpin's sig_key: give the origin the same key; required with --grip-listen (the hub refuses to start without it)"`
	GripMaxHeld           int           `flag:"grip-max-held" env:"HUBBUB_GRIP_MAX_HELD" yaml:"grip_max_held" help:"connections the GRIP listener holds at once (response and stream holds, WebSockets); a hold over it gets 503"`
	GripMaxWebSockets     int           `flag:"grip-max-websockets" env:"HUBBUB_GRIP_MAX_WEBSOCKETS" yaml:"grip_max_websockets" help:"WebSocket-over-HTTP connections the GRIP listener holds at once (they count against --grip-max-held too); an upgrade over it gets 503"`
	GripMaxOriginBody     int64         `flag:"grip-max-origin-body" env:"HUBBUB_GRIP_MAX_ORIGIN_BODY" yaml:"grip_max_origin_body" help:"bytes of an origin answer the GRIP proxy buffers (a response hold's timeout answer); a larger one gets the client 502; streamed answers are not bounded"`
	GripOriginTimeout     time.Duration `flag:"grip-origin-timeout" env:"HUBBUB_GRIP_ORIGIN_TIMEOUT" yaml:"grip_origin_timeout" help:"how long the origin may take to answer a proxied request with its headers; past it the client gets 504"`
}

// Default returns the built-in defaults.
func Default() Config {
	return Config{
		Listen:              "127.0.0.1:8080",
		Data:                "./hubbub-data",
		RedisPrefix:         "hubbub",
		MaxBody:             1 << 20,
		ReadTimeout:         30 * time.Second,
		IdleTimeout:         2 * time.Minute,
		MaxResponseBytes:    16 << 20,
		FetchMinInterval:    time.Second,
		HistoryMaxEvents:    10000,
		HistoryMaxAge:       7 * 24 * time.Hour,
		Heartbeat:           25 * time.Second,
		SubscriberBuffer:    1024,
		PollTimeout:         30 * time.Second,
		PollMaxTimeout:      120 * time.Second,
		SSERetry:            2 * time.Second,
		LogLevel:            "info",
		LogFormat:           "text",
		ShutdownTimeout:     10 * time.Second,
		WebSubLease:         10 * 24 * time.Hour,
		WebSubMinLease:      5 * time.Minute,
		WebSubMaxLease:      365 * 24 * time.Hour,
		WebSubSignature:     "sha256",
		WebhookConcurrency:  32,
		WebhookRetryBase:    5 * time.Second,
		WebhookRetryMax:     time.Hour,
		WebhookSuspendAfter: 24 * time.Hour,
		WebSubMaxPerHost:    1000,
		WebSubRate:          10,
		TaskLease:           30 * time.Second,
		SubscribeAuth:       "optional",

		// Outside feeds (--feeds): off until a pattern is given.
		FeedsMax:             1000,
		FeedsLinger:          time.Hour,
		FeedsMinInterval:     time.Minute,
		FeedsMaxInterval:     time.Hour,
		FeedsHostConcurrency: 2,
		FeedsHostInterval:    time.Second,
		GripMaxHeld:          10000,
		GripMaxWebSockets:    10000,
		GripMaxOriginBody:    1 << 20,
		GripOriginTimeout:    30 * time.Second,
	}
}

// The --config flag and its variable are not settings of Config: they say
// where the settings come from.
const (
	configFlag = "config"
	configEnv  = "HUBBUB_CONFIG"
	configHelp = "YAML file of settings (keys as in the YAML column)"
)

// setting is one field of a struct together with its tags.
type setting struct {
	field                 reflect.StructField
	flag, env, yaml, help string
	secret                bool
}

// settingsOf lists the tagged fields of struct type t, in declaration order.
func settingsOf(t reflect.Type) []setting {
	var ss []setting
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Tag.Get("flag") == "" {
			continue
		}
		ss = append(ss, setting{
			field:  f,
			flag:   f.Tag.Get("flag"),
			env:    f.Tag.Get("env"),
			yaml:   strings.Split(f.Tag.Get("yaml"), ",")[0],
			help:   f.Tag.Get("help"),
			secret: f.Tag.Get("secret") == "true",
		})
	}
	return ss
}

var (
	settings     = settingsOf(reflect.TypeFor[Config]())
	durationType = reflect.TypeFor[time.Duration]()
)

// setValue parses s into v according to v's type. A []string is split on
// commas, with blanks trimmed and empty items dropped.
func setValue(v reflect.Value, s string) error {
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("want a duration such as 25s, 1h30m or 168h (no days), not %q", s)
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("want a whole number, not %q", s)
		}
		v.SetInt(n)
	case v.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return fmt.Errorf("want a number: %w", err)
		}
		v.SetFloat(f)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("want true or false, not %q", s)
		}
		v.SetBool(b)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var items []string
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		v.Set(reflect.ValueOf(items).Convert(v.Type()))
	default:
		panic("config: unsupported setting type " + v.Type().String())
	}
	return nil
}

// formatValue renders v the way setValue reads it back.
func formatValue(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return formatDuration(time.Duration(v.Int()))
	case v.Kind() == reflect.Slice:
		return strings.Join(v.Interface().([]string), ",")
	default:
		return fmt.Sprint(v.Interface())
	}
}

// formatDuration is time.Duration.String without trailing zero units
// ("168h", not "168h0m0s").
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// flagValue adapts one field to flag.Value. For a []string field each use of
// the flag adds one item; the first use replaces the default.
type flagValue struct {
	v       reflect.Value
	touched bool
}

func (f *flagValue) String() string {
	if f == nil || !f.v.IsValid() {
		return ""
	}
	return formatValue(f.v)
}

func (f *flagValue) Set(s string) error {
	if f.v.Kind() != reflect.Slice {
		return setValue(f.v, s)
	}
	if !f.touched {
		f.v.Set(reflect.Zero(f.v.Type()))
		f.touched = true
	}
	f.v.Set(reflect.Append(f.v, reflect.ValueOf(s)))
	return nil
}

// IsBoolFlag lets a bool setting be given as a bare --name.
func (f *flagValue) IsBoolFlag() bool { return f.v.Kind() == reflect.Bool }

// ErrFlags wraps an error in the command-line flags, which Load has already
// explained on stderr.
var ErrFlags = errors.New("bad flags")

// Load builds the configuration: defaults, then the YAML file named by
// --config or HUBBUB_CONFIG (if any), then HUBBUB_* environment variables
// (empty counts as unset), then flags from args (without the program name).
// The result is validated. With -h or --help it prints the usage to stderr
// and returns flag.ErrHelp.
func Load(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	cfg := Default()

	// Flags are parsed first, into a copy, so that a bad flag or --help is
	// reported before any file is read; they are applied last.
	flagged := Default()
	fs := flag.NewFlagSet("hubbub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// The usage goes to stderr only for --help; after a bad flag the
	// FlagSet's own message is enough.
	var help strings.Builder
	fs.Usage = func() { usage(&help) }
	configPath := fs.String(configFlag, getenv(configEnv), configHelp)
	fv := reflect.ValueOf(&flagged).Elem()
	for _, s := range settings {
		fs.Var(&flagValue{v: fv.FieldByIndex(s.field.Index)}, s.flag, s.help)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stderr, help.String())
			return Config{}, err
		}
		fmt.Fprintln(stderr, "Run with --help for the list of settings.")
		return Config{}, fmt.Errorf("%w: %w", ErrFlags, err)
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected argument %q (settings are given as --name value)", fs.Arg(0))
		fmt.Fprintln(stderr, err)
		return Config{}, fmt.Errorf("%w: %w", ErrFlags, err)
	}

	if *configPath != "" {
		if err := loadFile(&cfg, *configPath); err != nil {
			return Config{}, err
		}
	}

	cv := reflect.ValueOf(&cfg).Elem()
	for _, s := range settings {
		if s.env == "" {
			continue
		}
		if raw := getenv(s.env); raw != "" {
			if err := setValue(cv.FieldByIndex(s.field.Index), raw); err != nil {
				return Config{}, fmt.Errorf("environment variable %s=%q: %w", s.env, raw, err)
			}
		}
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, s := range settings {
		if set[s.flag] {
			cv.FieldByIndex(s.field.Index).Set(fv.FieldByIndex(s.field.Index))
		}
	}

	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// loadFile overlays the YAML file at path onto cfg. Keys are the yaml tags;
// values are read by setValue, as flags and variables are, so a file and a
// flag take the same spellings and fail with the same messages. Unknown
// keys are errors, with the nearest known key suggested.
func loadFile(cfg *Config, path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil // an empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config file %s: line %d: want key: value pairs", path, root.Line)
	}
	cv := reflect.ValueOf(cfg).Elem()
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		s, ok := settingByYAML(k.Value)
		if !ok {
			return fmt.Errorf("config file %s: line %d: unknown key %q%s", path, k.Line, k.Value, suggest(k.Value))
		}
		var text string
		switch {
		case v.Kind == yaml.SequenceNode && s.field.Type.Kind() == reflect.Slice:
			items := make([]string, 0, len(v.Content))
			for _, it := range v.Content {
				if it.Kind != yaml.ScalarNode {
					return fmt.Errorf("config file %s: line %d: %s: want a list of plain values", path, it.Line, k.Value)
				}
				if strings.Contains(it.Value, ",") {
					return fmt.Errorf("config file %s: line %d: %s: an item may not contain a comma", path, it.Line, k.Value)
				}
				items = append(items, it.Value)
			}
			text = strings.Join(items, ",")
		case v.Kind == yaml.ScalarNode:
			text = v.Value
		default:
			return fmt.Errorf("config file %s: line %d: %s: want a single value%s", path, v.Line, k.Value,
				map[bool]string{true: " or a list", false: ""}[s.field.Type.Kind() == reflect.Slice])
		}
		if err := setValue(cv.FieldByIndex(s.field.Index), text); err != nil {
			return fmt.Errorf("config file %s: line %d: %s: %w", path, v.Line, k.Value, err)
		}
	}
	return nil
}

// settingByYAML finds the setting whose YAML key is key.
func settingByYAML(key string) (setting, bool) {
	for _, s := range settings {
		if s.yaml == key {
			return s, true
		}
	}
	return setting{}, false
}

// suggest names the known YAML key closest to an unknown one, if any is
// close (a typo or a singular/plural slip).
func suggest(key string) string {
	best, bestD := "", 3
	for _, s := range settings {
		if d := editDistance(key, s.yaml); d < bestD {
			best, bestD = s.yaml, d
		}
	}
	if best == "" {
		return " (hubbub config-reference lists the keys)"
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance of two short strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// usage writes the --help text: every flag, its variable and its default.
func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: hubbub serve [flags]\n\nEach flag may also be set by its environment variable or config file key;\nflags override the environment, which overrides the file.\n\n")
	fmt.Fprintf(w, "  --%s FILE\n    \t%s (env %s)\n", configFlag, configHelp, configEnv)
	def := reflect.ValueOf(Default())
	for _, s := range settings {
		fmt.Fprintf(w, "  --%s %s\n    \t%s (env %s, default %q)\n",
			s.flag, typeName(s.field.Type), s.help, s.env, formatValue(def.FieldByIndex(s.field.Index)))
	}
}

// typeName is the placeholder shown after a flag in the usage.
func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "DURATION"
	case t.Kind() == reflect.Slice:
		return "STRING"
	case t.Kind() == reflect.Float64:
		return "NUMBER"
	default:
		return strings.ToUpper(t.Kind().String())
	}
}

// Reference writes a Markdown table of every setting — flag, environment
// variable, YAML key, default and meaning — generated from the struct tags.
func Reference(w io.Writer) {
	fmt.Fprintln(w, "| Flag | Environment | YAML key | Default | Meaning |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	fmt.Fprintf(w, "| `--%s` | `%s` | | | %s |\n", configFlag, configEnv, configHelp)
	def := reflect.ValueOf(Default())
	for _, s := range settings {
		d := formatValue(def.FieldByIndex(s.field.Index))
		if d == "" {
			d = "(empty)"
		} else {
			d = "`" + d + "`"
		}
		fmt.Fprintf(w, "| `--%s` | `%s` | `%s` | %s | %s |\n",
			s.flag, s.env, s.yaml, d, strings.ReplaceAll(s.help, "|", `\|`))
	}
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q", s)
}

// LogValue implements slog.LogValuer: every setting under its YAML key,
// except that secret settings show only how many values are set.
func (c Config) LogValue() slog.Value {
	v := reflect.ValueOf(c)
	attrs := make([]slog.Attr, 0, len(settings))
	for _, s := range settings {
		f := v.FieldByIndex(s.field.Index)
		switch {
		case s.secret && f.Kind() == reflect.Slice:
			attrs = append(attrs, slog.Int(s.yaml+"_count", f.Len()))
		case s.secret:
			attrs = append(attrs, slog.Bool(s.yaml+"_set", !f.IsZero()))
		case f.Type() == durationType:
			attrs = append(attrs, slog.Duration(s.yaml, time.Duration(f.Int())))
		default:
			attrs = append(attrs, slog.Any(s.yaml, f.Interface()))
		}
	}
	return slog.GroupValue(attrs...)
}

// Logger builds the logger described by LogLevel and LogFormat, writing to
// w. Invalid values (which Validate rejects) fall back to info and text.
func (c Config) Logger(w io.Writer) *slog.Logger {
	level, err := parseLevel(c.LogLevel)
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.ToLower(c.LogFormat) == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// GripKey decodes --grip-sig-key: "base64:..." is base64 (for binary
// keys, as Pushpin's sig_key), anything else the bytes as given.
func GripKey(s string) ([]byte, error) {
	if rest, ok := strings.CutPrefix(s, "base64:"); ok {
		b, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return nil, errors.New("base64: key does not decode")
		}
		return b, nil
	}
	return []byte(s), nil
}
