package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env returns a getenv over a fixed map.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeFile writes a YAML file in a temporary directory and returns its path.
func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hubbub.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
	c, err := Load(nil, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("Load with nothing = %+v, want defaults", c)
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "listen: file:1\nheartbeat: 5s\npublish_keys: [f1, f2]\nmax_body: 100\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(*Config)
	}{
		{"default", nil, nil, func(c *Config) {}},
		{"file", []string{"--config", file}, nil, func(c *Config) {
			c.Listen, c.Heartbeat, c.PublishKeys, c.MaxBody = "file:1", 5*time.Second, []string{"f1", "f2"}, 100
		}},
		{"file via env", nil, map[string]string{"HUBBUB_CONFIG": file}, func(c *Config) {
			c.Listen, c.Heartbeat, c.PublishKeys, c.MaxBody = "file:1", 5*time.Second, []string{"f1", "f2"}, 100
		}},
		{"env over file", []string{"--config", file}, map[string]string{
			"HUBBUB_LISTEN": "env:2", "HUBBUB_PUBLISH_KEYS": "e1, e2,,",
		}, func(c *Config) {
			c.Listen, c.Heartbeat, c.PublishKeys, c.MaxBody = "env:2", 5*time.Second, []string{"e1", "e2"}, 100
		}},
		{"flag over env", []string{"--config", file, "--listen", "flag:3", "--publish-key", "k1", "-publish-key=k2"}, map[string]string{
			"HUBBUB_LISTEN": "env:2", "HUBBUB_PUBLISH_KEYS": "e1", "HUBBUB_MAX_BODY": "200",
		}, func(c *Config) {
			c.Listen, c.Heartbeat, c.PublishKeys, c.MaxBody = "flag:3", 5*time.Second, []string{"k1", "k2"}, 200
		}},
		{"flag --config over env", []string{"--config", file}, map[string]string{"HUBBUB_CONFIG": "/nonexistent"}, func(c *Config) {
			c.Listen, c.Heartbeat, c.PublishKeys, c.MaxBody = "file:1", 5*time.Second, []string{"f1", "f2"}, 100
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(tt.args, env(tt.env), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			want := Default()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestEveryFieldFromEveryLayer sets each setting to a non-default value from
// the file, the environment and a flag in turn.
func TestEveryFieldFromEveryLayer(t *testing.T) {
	values := map[string]string{
		"Listen": ":9", "Store": "redis://127.0.0.1:6379/3", "RedisPrefix": "hp", "NodeID": "node-a", "Data": "/var/hub", "PublicURL": "https://hub.example.com",
		"PublishKeys": "a", "AdminKey": "adm", "JWTSecret": "0123456789abcdef0123456789abcdef", "JWTPublicKey": "/etc/hub.pem",
		"JWKSURL": "https://id.example/jwks", "JWTIssuer": "iss", "JWTAudience": "aud", "Private": "user/**", "SubscribeAuth": "required",
		"TrustedProxies": "10.0.0.0/8", "MaxBody": "2048", "ReadTimeout": "9s", "IdleTimeout": "3m", "MaxConnsPerIP": "12", "PublishRate": "2.5", "MaxResponseBytes": "4096", "HistoryMaxEvents": "5", "HistoryMaxAge": "1h",
		"Heartbeat": "3s", "SubscriberBuffer": "7", "PollTimeout": "40s", "PollMaxTimeout": "5m",
		"SSERetry": "500ms", "LogLevel": "debug", "LogFormat": "json", "Coalesce": "docs/**=2s", "WSOrigins": "app.example.com",
		"WebSubLease": "48h", "WebSubMinLease": "1h", "WebSubMaxLease": "96h", "WebSubSignature": "sha1",
		"FetchMinInterval": "3s", "AllowPrivateCallbacks": "true", "WebhookConcurrency": "3", "WebhookRetryBase": "2s", "WebhookRetryMax": "9m", "WebhookSuspendAfter": "6h", "WebSubMaxPerHost": "4", "WebSubRate": "5", "TaskLease": "7s",
		"Upstreams": "up", "Feeds": "https://*.example.com/**", "FeedsMax": "9", "FeedsLinger": "2h", "FeedsMinInterval": "2m", "FeedsMaxInterval": "3h",
		"FeedsHostConcurrency": "3", "FeedsHostInterval": "2s", "ShutdownTimeout": "1m", "ShutdownDelay": "2s", "PProf": "true",
		"TLSCert": "c.pem", "TLSKey": "k.pem", "AdminListen": "127.0.0.1:9", "MetricsKey": "mk", "CORSOrigins": "https://app.example.com",
		"FrameAncestors": "https://cms.example.com",
		"GripListen":     "127.0.0.1:7", "GripOrigin": "http://127.0.0.1:3000", "GripRoutes": "/api/=http://127.0.0.1:3001",
		"GripSigKey": "0123456789abcdef0123456789abcdef", "GripMaxHeld": "9", "GripMaxWebSockets": "7", "GripMaxOriginBody": "999", "GripOriginTimeout": "4s",
	}
	want := Config{Listen: ":9", Store: "redis://127.0.0.1:6379/3", RedisPrefix: "hp", NodeID: "node-a", Data: "/var/hub",
		PublicURL: "https://hub.example.com", PublishKeys: []string{"a"}, AdminKey: "adm",
		JWTSecret: "0123456789abcdef0123456789abcdef", JWTPublicKey: "/etc/hub.pem", JWKSURL: "https://id.example/jwks",
		JWTIssuer: "iss", JWTAudience: "aud", Private: []string{"user/**"}, SubscribeAuth: "required", TrustedProxies: []string{"10.0.0.0/8"},
		MaxBody:     2048,
		ReadTimeout: 9 * time.Second, IdleTimeout: 3 * time.Minute, MaxConnsPerIP: 12, PublishRate: 2.5, MaxResponseBytes: 4096,
		HistoryMaxEvents: 5, HistoryMaxAge: time.Hour, Heartbeat: 3 * time.Second, SubscriberBuffer: 7,
		PollTimeout: 40 * time.Second, PollMaxTimeout: 5 * time.Minute, SSERetry: 500 * time.Millisecond,
		LogLevel: "debug", LogFormat: "json", Coalesce: []string{"docs/**=2s"}, WSOrigins: []string{"app.example.com"},
		WebSubLease: 48 * time.Hour, WebSubMinLease: time.Hour, WebSubMaxLease: 96 * time.Hour, WebSubSignature: "sha1",
		FetchMinInterval: 3 * time.Second, AllowPrivateCallbacks: true, WebhookConcurrency: 3, WebhookRetryBase: 2 * time.Second, WebhookRetryMax: 9 * time.Minute, WebhookSuspendAfter: 6 * time.Hour, WebSubMaxPerHost: 4, WebSubRate: 5,
		TaskLease: 7 * time.Second, Upstreams: []string{"up"}, Feeds: []string{"https://*.example.com/**"}, FeedsMax: 9, FeedsLinger: 2 * time.Hour,
		FeedsMinInterval: 2 * time.Minute, FeedsMaxInterval: 3 * time.Hour, FeedsHostConcurrency: 3, FeedsHostInterval: 2 * time.Second, ShutdownTimeout: time.Minute, ShutdownDelay: 2 * time.Second, PProf: true,
		TLSCert: "c.pem", TLSKey: "k.pem", AdminListen: "127.0.0.1:9", MetricsKey: "mk", CORSOrigins: []string{"https://app.example.com"},
		FrameAncestors: []string{"https://cms.example.com"},
		GripListen:     "127.0.0.1:7", GripOrigin: "http://127.0.0.1:3000", GripRoutes: []string{"/api/=http://127.0.0.1:3001"},
		GripSigKey: "0123456789abcdef0123456789abcdef", GripMaxHeld: 9, GripMaxWebSockets: 7, GripMaxOriginBody: 999, GripOriginTimeout: 4 * time.Second}
	var yamlDoc strings.Builder
	var args []string
	envs := map[string]string{}
	for _, s := range settings {
		v, ok := values[s.field.Name]
		if !ok {
			t.Fatalf("test has no value for %s", s.field.Name)
		}
		switch s.field.Type.Kind() {
		case reflect.Slice:
			yamlDoc.WriteString(s.yaml + ": [" + v + "]\n")
		case reflect.Int, reflect.Int64, reflect.Float64, reflect.Bool: // durations too: 1h is a plain string
			yamlDoc.WriteString(s.yaml + ": " + v + "\n")
		default:
			yamlDoc.WriteString(s.yaml + ": \"" + v + "\"\n")
		}
		args = append(args, "--"+s.flag+"="+v) // = so bool flags take it too
		envs[s.env] = v
	}
	for name, l := range map[string]struct {
		args []string
		env  map[string]string
	}{
		"file": {[]string{"--config", writeFile(t, yamlDoc.String())}, nil},
		"env":  {nil, envs},
		"flag": {args, nil},
	} {
		got, err := Load(l.args, env(l.env), &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v\nwant %+v", name, got, want)
		}
	}
}

// TestKinds covers every supported kind, including bool, which Config does
// not use yet.
func TestKinds(t *testing.T) {
	var s struct {
		S  string
		L  []string
		I  int
		I6 int64
		F  float64
		D  time.Duration
		B  bool
	}
	v := reflect.ValueOf(&s).Elem()
	tests := []struct {
		field, in string
		want      any
		bad       bool
	}{
		{"S", " x y ", " x y ", false},
		{"L", "a, b ,,c", []string{"a", "b", "c"}, false},
		{"L", "", []string(nil), false},
		{"I", "-42", -42, false},
		{"I", "1.5", nil, true},
		{"I6", "9000000000", int64(9000000000), false},
		{"I6", "x", nil, true},
		{"F", " 0.25 ", 0.25, false},
		{"F", "ten", nil, true},
		{"D", "1h30m", 90 * time.Minute, false},
		{"D", "30", nil, true},
		{"B", "true", true, false},
		{"B", "0", false, false},
		{"B", "yes", nil, true},
	}
	for _, tt := range tests {
		f := v.FieldByName(tt.field)
		err := setValue(f, tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("%s=%q: no error", tt.field, tt.in)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(f.Interface(), tt.want) {
			t.Errorf("%s=%q: got %#v, %v; want %#v", tt.field, tt.in, f.Interface(), err, tt.want)
		}
	}
	b := &flagValue{v: v.FieldByName("B")}
	if !b.IsBoolFlag() {
		t.Error("bool flag is not a bool flag")
	}
	if got := formatValue(reflect.ValueOf(168 * time.Hour)); got != "168h" {
		t.Errorf("formatValue(168h) = %q", got)
	}
}

func TestBadValues(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // substring of the error
	}{
		{"env int", nil, map[string]string{"HUBBUB_MAX_BODY": "1MB"}, "HUBBUB_MAX_BODY"},
		{"env duration", nil, map[string]string{"HUBBUB_HEARTBEAT": "25"}, "HUBBUB_HEARTBEAT"},
		{"flag int", []string{"--history-max-events", "many"}, nil, "history-max-events"},
		{"flag duration", []string{"--poll-timeout", "soon"}, nil, "poll-timeout"},
		{"unknown flag", []string{"--lisen", "x"}, nil, "lisen"},
		{"positional", []string{"serve"}, nil, "serve"},
		{"negative max body", []string{"--max-body", "-1"}, nil, "--max-body"},
		{"zero max body", nil, map[string]string{"HUBBUB_MAX_BODY": "0"}, "HUBBUB_MAX_BODY"},
		{"negative history", []string{"--history-max-events", "-1"}, nil, "--history-max-events"},
		{"negative age", []string{"--history-max-age", "-1h"}, nil, "--history-max-age"},
		{"short heartbeat", []string{"--heartbeat", "500ms"}, nil, "--heartbeat"},
		{"zero buffer", []string{"--subscriber-buffer", "0"}, nil, "--subscriber-buffer"},
		{"zero poll", []string{"--poll-timeout", "0s"}, nil, "--poll-timeout"},
		{"max < poll", []string{"--poll-timeout", "60s", "--poll-max-timeout", "30s"}, nil, "--poll-max-timeout"},
		{"negative retry", []string{"--sse-retry", "-1s"}, nil, "--sse-retry"},
		{"log level", []string{"--log-level", "verbose"}, nil, "--log-level"},
		{"log format", []string{"--log-format", "xml"}, nil, "--log-format"},
		{"negative read timeout", []string{"--read-timeout", "-1s"}, nil, "--read-timeout"},
		{"zero idle timeout", []string{"--idle-timeout", "0s"}, nil, "--idle-timeout"},
		{"negative conns", []string{"--max-conns-per-ip", "-1"}, nil, "--max-conns-per-ip"},
		{"negative rate", []string{"--publish-rate", "-1"}, nil, "--publish-rate"},
		{"NaN rate", nil, map[string]string{"HUBBUB_PUBLISH_RATE": "NaN"}, "HUBBUB_PUBLISH_RATE"},
		{"negative shutdown", []string{"--shutdown-timeout", "-1s"}, nil, "--shutdown-timeout"},
		{"public url", []string{"--public-url", "hub.example.com"}, nil, "--public-url"},
		{"empty listen", []string{"--listen", ""}, nil, "--listen"},
		{"zero retry base", []string{"--webhook-retry-base", "0s"}, nil, "--webhook-retry-base"},
		{"retry max < base", []string{"--webhook-retry-base", "1m", "--webhook-retry-max", "30s"}, nil, "--webhook-retry-max"},
		{"negative suspend", nil, map[string]string{"HUBBUB_WEBHOOK_SUSPEND_AFTER": "-1h"}, "HUBBUB_WEBHOOK_SUSPEND_AFTER"},
		{"cert without key", []string{"--tls-cert", "c.pem"}, nil, "--tls-cert"},
		{"key without cert", nil, map[string]string{"HUBBUB_TLS_KEY": "k.pem"}, "HUBBUB_TLS_CERT"},
		{"admin on main", []string{"--listen", ":9", "--admin-listen", ":9"}, nil, "--admin-listen"},
		{"origin with path", []string{"--cors-origin", "https://app.example.com/"}, nil, "--cors-origin"},
		{"origin without scheme", []string{"--cors-origin", "app.example.com"}, nil, "--cors-origin"},
		{"origin ftp", nil, map[string]string{"HUBBUB_CORS_ORIGINS": "ftp://x"}, "HUBBUB_CORS_ORIGINS"},
		{"missing file", []string{"--config", "/nonexistent/hubbub.yaml"}, nil, "/nonexistent/hubbub.yaml"},
		{"short jwt secret", []string{"--jwt-secret", "short"}, nil, "--jwt-secret"},
		{"subscribe auth value", []string{"--subscribe-auth", "always"}, nil, "--subscribe-auth"},
		{"required without tokens", []string{"--subscribe-auth", "required"}, nil, "--subscribe-auth"},
		{"private without tokens", []string{"--private", "a/**"}, nil, "--private"},
		{"bad private pattern", []string{"--private", "a/**/**", "--jwks-url", "https://id.example/jwks"}, nil, "--private"},
		{"bad jwks url", []string{"--jwks-url", "id.example/jwks"}, nil, "--jwks-url"},
		{"bad trusted proxy", []string{"--trusted-proxy", "10.0.0.0/33"}, nil, "--trusted-proxy"},
		{"env private", nil, map[string]string{"HUBBUB_PRIVATE": "a/**"}, "HUBBUB_PRIVATE"},
		{"frame ancestor with a path", []string{"--frame-ancestors", "https://cms.example.com/page"}, nil, "--frame-ancestors"},
		{"frame ancestor injecting a directive", []string{"--frame-ancestors", "'self'; script-src *"}, nil, "--frame-ancestors"},
		{"frame ancestor unquoted self", []string{"--frame-ancestors", "self"}, nil, "--frame-ancestors"},
		{"frame ancestor none", []string{"--frame-ancestors", "'none'"}, nil, "--frame-ancestors"},
		{"frame ancestor without scheme", nil, map[string]string{"HUBBUB_FRAME_ANCESTORS": "cms.example.com"}, "HUBBUB_FRAME_ANCESTORS"},
		{"frame ancestor javascript", []string{"--frame-ancestors", "javascript://x"}, nil, "--frame-ancestors"},
		{"grip without sig key", []string{"--grip-listen", ":7", "--grip-origin", "http://127.0.0.1:3000"}, nil, "--grip-sig-key"},
		{"grip short sig key", []string{"--grip-listen", ":7", "--grip-origin", "http://o", "--grip-sig-key", "changeme"}, nil, "--grip-sig-key"},
		{"grip bad base64 key", []string{"--grip-listen", ":7", "--grip-origin", "http://o", "--grip-sig-key", "base64:!!"}, nil, "--grip-sig-key"},
		{"grip without origin", []string{"--grip-listen", ":7", "--grip-sig-key", "0123456789abcdef0123456789abcdef"}, nil, "--grip-origin"},
		{"grip origin not http", []string{"--grip-listen", ":7", "--grip-origin", "ftp://o", "--grip-sig-key", "0123456789abcdef0123456789abcdef"}, nil, "--grip-origin"},
		{"grip route without slash", []string{"--grip-listen", ":7", "--grip-route", "api=http://o", "--grip-sig-key", "0123456789abcdef0123456789abcdef"}, nil, "--grip-route"},
		{"grip on main", []string{"--listen", ":7", "--grip-listen", ":7", "--grip-origin", "http://o", "--grip-sig-key", "0123456789abcdef0123456789abcdef"}, nil, "--grip-listen"},
		{"grip zero held", []string{"--grip-max-held", "0"}, nil, "--grip-max-held"},
		{"grip zero origin body", []string{"--grip-max-origin-body", "0"}, nil, "--grip-max-origin-body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			_, err := Load(tt.args, env(tt.env), &stderr)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not name %q", err, tt.want)
			}
		})
	}
}

func TestYAMLErrors(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"unknown key", "listen: :1\nheartbeet: 5s\n", "heartbeet"},
		{"unknown key suggests", "publish_key: k\n", "did you mean publish_keys?"},
		{"duration as int", "heartbeat: 25\n", "heartbeat: want a duration"},
		{"days", "history_max_age: 7d\n", "line 1: history_max_age: want a duration such as 25s, 1h30m or 168h (no days)"},
		{"bool", "allow_private_callbacks: maybe\n", "want true or false"},
		{"map for a value", "listen: {a: 1}\n", "want a single value"},
		{"not a mapping", "- listen\n", "want key: value pairs"},
		{"bad duration", "poll_timeout: soon\n", "soon"},
		{"wrong type", "max_body: big\n", "big"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load([]string{"--config", writeFile(t, tt.body)}, env(nil), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v does not name %q", err, tt.want)
			}
		})
	}
	// An empty file or one of comments only changes nothing.
	c, err := Load([]string{"--config", writeFile(t, "# nothing\n")}, env(nil), &bytes.Buffer{})
	if err != nil || !reflect.DeepEqual(c, Default()) {
		t.Fatalf("comment-only file: %+v, %v", c, err)
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		var stderr bytes.Buffer
		_, err := Load([]string{arg}, env(nil), &stderr)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%s: err = %v, want flag.ErrHelp", arg, err)
		}
		out := stderr.String()
		for _, want := range []string{"--config", "HUBBUB_CONFIG", `default "127.0.0.1:8080"`, `default "168h"`} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: usage lacks %q", arg, want)
			}
		}
		for _, s := range settings {
			if !strings.Contains(out, "--"+s.flag+" ") || !strings.Contains(out, s.env) {
				t.Errorf("%s: usage lacks %s / %s", arg, s.flag, s.env)
			}
		}
	}
}

func TestReference(t *testing.T) {
	var b bytes.Buffer
	Reference(&b)
	out := b.String()
	if len(settings) != reflect.TypeFor[Config]().NumField() {
		t.Fatalf("%d settings for %d fields: every field needs tags", len(settings), reflect.TypeFor[Config]().NumField())
	}
	for _, s := range settings {
		if s.env == "" || s.yaml == "" || s.help == "" {
			t.Errorf("%s: missing env, yaml or help tag", s.field.Name)
		}
		row := "| `--" + s.flag + "` | `" + s.env + "` | `" + s.yaml + "` |"
		if !strings.Contains(out, row) {
			t.Errorf("reference lacks row for %s", s.field.Name)
		}
	}
	for _, want := range []string{"`1048576`", "`168h`", "`25s`", "`2m`", "(empty)"} {
		if !strings.Contains(out, want) {
			t.Errorf("reference lacks default %s", want)
		}
	}
}

func TestLogValueHidesSecrets(t *testing.T) {
	c := Default()
	c.PublishKeys = []string{"s3cret-one", "s3cret-two"}
	var b bytes.Buffer
	c.Logger(&b).Info("config", "config", c)
	out := b.String()
	if strings.Contains(out, "s3cret") {
		t.Fatalf("secret logged: %s", out)
	}
	for _, want := range []string{"config.publish_keys_count=2", "config.listen=127.0.0.1:8080", "config.heartbeat=25s"} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
}

func TestLogger(t *testing.T) {
	c := Default()
	c.LogLevel, c.LogFormat = "warn", "json"
	var b bytes.Buffer
	l := c.Logger(&b)
	l.Info("hidden")
	l.Warn("shown")
	if out := b.String(); strings.Contains(out, "hidden") || !strings.Contains(out, `"msg":"shown"`) {
		t.Fatalf("unexpected log output %q", out)
	}
}
