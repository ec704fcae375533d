package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The deployment files (Dockerfile, deploy/) name settings, commands and
// each other. These tests hold them to the binary, so that none can rot:
// every HUBBUB_* variable is a setting `hubbub config-reference` lists,
// every health check is a command the binary has, and each file is run as
// far as this machine can (no container runtime is assumed).

// settingEnvs returns the environment variables `hubbub serve` reads.
func settingEnvs(t *testing.T) map[string]bool {
	t.Helper()
	code, out := runCLI(t, nil, "config-reference")
	if code != 0 {
		t.Fatalf("config-reference: exit %d: %s", code, out)
	}
	envs := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `--[a-z0-9-]+` \\| `(HUBBUB_[A-Z0-9_]+)`").FindAllStringSubmatch(out, -1) {
		envs[m[1]] = true
	}
	if len(envs) < 20 {
		t.Fatalf("config-reference lists only %d environment variables:\n%s", len(envs), out)
	}
	return envs
}

// checkEnvNames fails for every HUBBUB_* name that is not a setting.
func checkEnvNames(t *testing.T, where string, env map[string]string, settings map[string]bool) {
	t.Helper()
	for k := range env {
		if strings.HasPrefix(k, "HUBBUB_") && !settings[k] {
			t.Errorf("%s sets %s, which is not a hubbub setting", where, k)
		}
	}
}

// checkCommand fails unless the hubbub command line args (without the
// binary) exists with these flags: `hubbub ARGS --help` exits 0.
func checkCommand(t *testing.T, where string, args []string) {
	t.Helper()
	if code, out := runCLI(t, nil, append(slices.Clone(args), "--help")...); code != 0 {
		t.Errorf("%s runs `hubbub %s`, which the binary refuses (exit %d): %s", where, strings.Join(args, " "), code, clipString(out, 500))
	}
}

// envList renders env as KEY=VALUE strings.
func envList(env map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// --- Compose ------------------------------------------------------------

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Networks map[string]any            `yaml:"networks"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Volumes   []string `yaml:"volumes"`
	Ports     []string `yaml:"ports"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Networks map[string]*struct {
		IPv4 string `yaml:"ipv4_address"`
	} `yaml:"networks"`
	ReadOnly bool `yaml:"read_only"`
}

// interpolate expands ${VAR}, ${VAR:-default} and ${VAR:?message} as
// Compose does, from vals; an unset ${VAR:?...} fails the test.
func interpolate(t *testing.T, s string, vals map[string]string) string {
	t.Helper()
	re := regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::([-?])([^}]*))?\}`)
	return re.ReplaceAllStringFunc(s, func(m string) string {
		p := re.FindStringSubmatch(m)
		if v, ok := vals[p[1]]; ok && v != "" {
			return v
		}
		switch p[2] {
		case "-":
			return p[3]
		case "?":
			t.Fatalf("compose.yaml needs %s: %s", p[1], p[3])
		}
		return ""
	})
}

func loadCompose(t *testing.T, vals map[string]string) composeFile {
	t.Helper()
	raw, err := os.ReadFile("../deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal([]byte(interpolate(t, string(raw), vals)), &cf); err != nil {
		t.Fatalf("deploy/compose.yaml: %v", err)
	}
	return cf
}

// TestComposeDeployment checks deploy/compose.yaml against the binary and
// deploy/nginx.conf, then runs what a container runtime would: three nodes
// with the file's environment on the real Redis, and nginx with
// deploy/nginx.conf in front of them; a subscriber and a publisher
// through nginx reach one another whatever nodes they land on.
func TestComposeDeployment(t *testing.T) {
	t.Parallel()
	keys := map[string]string{"HUBBUB_PUBLISH_KEYS": "deploy-publish-key", "HUBBUB_ADMIN_KEY": "deploy-admin-key"}
	cf := loadCompose(t, keys)
	settings := settingEnvs(t)

	var hubNames []string
	for name, s := range cf.Services {
		if s.Build != nil {
			hubNames = append(hubNames, name)
		}
	}
	slices.Sort(hubNames)
	if len(hubNames) != 3 {
		t.Fatalf("compose.yaml builds %d hub services (%v), want 3", len(hubNames), hubNames)
	}
	redis, ok := cf.Services["redis"]
	if !ok || !strings.Contains(strings.Join(redis.Command, " "), "--appendonly yes") || redis.Healthcheck == nil {
		t.Errorf("compose.yaml: redis must run with --appendonly yes and a health check: %+v", redis)
	}
	nginx, ok := cf.Services["nginx"]
	if !ok {
		t.Fatal("compose.yaml has no nginx service")
	}
	nodeIDs := map[string]bool{}
	for _, name := range hubNames {
		s := cf.Services[name]
		where := "compose.yaml service " + name
		checkEnvNames(t, where, s.Environment, settings)
		if _, err := os.Stat(filepath.Join("../deploy", s.Build.Context, s.Build.Dockerfile)); err != nil {
			t.Errorf("%s builds from a missing Dockerfile: %v", where, err)
		}
		if s.Healthcheck == nil || len(s.Healthcheck.Test) < 3 || !slices.Equal(s.Healthcheck.Test[:3], []string{"CMD", "/usr/local/bin/hubbub", "healthcheck"}) {
			t.Errorf("%s: health check %+v, want CMD /usr/local/bin/hubbub healthcheck ...", where, s.Healthcheck)
		} else {
			checkCommand(t, where+"'s health check", s.Healthcheck.Test[2:])
		}
		u, err := url.Parse(s.Environment["HUBBUB_STORE"])
		if err != nil || u.Scheme != "redis" || u.Hostname() != "redis" {
			t.Errorf("%s: HUBBUB_STORE %q is not the redis service", where, s.Environment["HUBBUB_STORE"])
		}
		if s.DependsOn["redis"].Condition != "service_healthy" {
			t.Errorf("%s does not wait for a healthy redis", where)
		}
		if nginx.DependsOn[name].Condition != "service_healthy" {
			t.Errorf("nginx does not wait for a healthy %s", name)
		}
		if nodeIDs[s.Environment["HUBBUB_NODE_ID"]] {
			t.Errorf("%s: HUBBUB_NODE_ID %q is not unique", where, s.Environment["HUBBUB_NODE_ID"])
		}
		nodeIDs[s.Environment["HUBBUB_NODE_ID"]] = true
		if !s.ReadOnly {
			t.Errorf("%s: the root file system should be read-only", where)
		}
		// nginx's X-Forwarded-For is believed: its fixed address is a
		// trusted proxy.
		proxyIP := ""
		if n := nginx.Networks["hubnet"]; n != nil {
			proxyIP = n.IPv4
		}
		trusted := false
		for _, p := range strings.Split(s.Environment["HUBBUB_TRUSTED_PROXIES"], ",") {
			pfx, err := netip.ParsePrefix(strings.TrimSpace(p))
			addr, aerr := netip.ParseAddr(proxyIP)
			trusted = trusted || err == nil && aerr == nil && pfx.Contains(addr)
		}
		if !trusted {
			t.Errorf("%s: HUBBUB_TRUSTED_PROXIES %q does not cover nginx's address %q", where, s.Environment["HUBBUB_TRUSTED_PROXIES"], proxyIP)
		}
	}
	if !slices.Contains(nginx.Volumes, "./nginx.conf:/etc/nginx/conf.d/default.conf:ro") {
		t.Errorf("nginx does not mount ./nginx.conf: %v", nginx.Volumes)
	}
	for _, s := range cf.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if _, declared := cf.Volumes[src]; !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") && !declared {
				t.Errorf("volume %q is not declared", src)
			}
		}
	}
	site, err := os.ReadFile("../deploy/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range hubNames {
		_, port, _ := strings.Cut(cf.Services[name].Environment["HUBBUB_LISTEN"], ":")
		if !strings.Contains(string(site), "server "+name+":"+port+" ") {
			t.Errorf("nginx.conf has no upstream server %s:%s", name, port)
		}
	}
	if t.Failed() {
		return
	}
	t.Run("compose config", func(t *testing.T) {
		// Compose's own validation, when a Compose is installed: the
		// plugin (docker compose) or the standalone docker-compose.
		var cmd *exec.Cmd
		if out, err := exec.Command("docker", "compose", "version").CombinedOutput(); err == nil && strings.Contains(string(out), "version") {
			cmd = exec.Command("docker", "compose", "-f", "compose.yaml", "config", "-q")
		} else {
			cmd = exec.Command(requireTool(t, "docker-compose", "HUBBUB_REQUIRE_COMPOSE", "apt-get install -y docker-compose"), "-f", "compose.yaml", "config", "-q")
		}
		cmd.Dir = "../deploy"
		cmd.Env = append(hubEnv(), envList(keys)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%v: %v\n%s", cmd.Args, err, out)
		}
	})

	// Run it: three nodes with the services' environment (addresses and
	// Redis prefix of this test), nginx.conf in front of them.
	_, prefix := requireRedis(t)
	var hubs []*hubProc
	for _, name := range hubNames {
		env := map[string]string{}
		for k, v := range cf.Services[name].Environment {
			env[k] = v
		}
		env["HUBBUB_STORE"] = "redis://" + sharedRedis() + "/0"
		env["HUBBUB_REDIS_PREFIX"] = prefix
		env["HUBBUB_TRUSTED_PROXIES"] = "127.0.0.1/32"
		env["HUBBUB_LOG_FORMAT"] = "text" // startHub reads the text log line
		hubs = append(hubs, startHubEnv(t, "", envList(env)))
	}
	ng := startNginxSite(t, func(listen string) string {
		s := replaceOnce(t, string(site), "listen 80;", "listen "+listen+";")
		for i, name := range hubNames {
			_, port, _ := strings.Cut(cf.Services[name].Environment["HUBBUB_LISTEN"], ":")
			s = replaceOnce(t, s, "server "+name+":"+port+" ", "server "+strings.TrimPrefix(hubs[i].URL, "http://")+" ")
		}
		return s
	})
	p := *hubs[0]
	p.URL = ng.URL
	proxied := &p
	pubKey := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + keys["HUBBUB_PUBLISH_KEYS"]}}
	admin := http.Header{"Authorization": {"Bearer " + keys["HUBBUB_ADMIN_KEY"]}}

	// Clients through nginx are not local: publishing needs the key.
	if a := proxied.do(t, http.MethodPost, "/publish", ctHeader("application/json"), []byte(`{"topic":"deploy/t","data":0}`)); a.Status != http.StatusUnauthorized {
		t.Errorf("publish through nginx without a key: %s, want 401", a)
	}
	s := proxied.openSSE(t, "topic=deploy/t", "", false)
	defer s.Close()
	for i := 1; i <= 6; i++ { // round robin: the publishes land on every node
		if a := proxied.do(t, http.MethodPost, "/publish", pubKey, fmt.Appendf(nil, `{"topic":"deploy/t","data":%d}`, i)); a.Status != http.StatusOK {
			t.Fatalf("publish through nginx: %s", a)
		}
	}
	s.expectSeqs(t, "deploy/t", 1, 2, 3, 4, 5, 6)
	// hubbub backup is for the embedded store; these nodes keep their data
	// in Redis, and say so.
	if a := proxied.do(t, http.MethodPost, "/api/backup", admin, nil); a.Status != http.StatusNotImplemented || !strings.Contains(string(a.Body), "back up Redis") {
		t.Errorf("POST /api/backup on Redis: %s, want 501", a)
	}
	if a := proxied.do(t, http.MethodGet, "/metrics", nil, nil); a.Status != http.StatusNotFound {
		t.Errorf("/metrics through nginx: %s, want 404", a)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		a := proxied.do(t, http.MethodGet, "/api/nodes", admin, nil)
		var nodes struct{ Nodes []struct{ ID string } }
		_ = json.Unmarshal(a.Body, &nodes)
		if a.Status == http.StatusOK && len(nodes.Nodes) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/api/nodes through nginx: %s, want the three nodes", a)
		}
		time.Sleep(100 * time.Millisecond) // polling heartbeats, not synchronisation
	}
}

// --- Dockerfile -----------------------------------------------------------

// dockerInstr is one Dockerfile instruction: its keyword and the rest.
type dockerInstr struct{ op, args string }

func parseDockerfile(t *testing.T) []dockerInstr {
	t.Helper()
	f, err := os.Open("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []dockerInstr
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if more, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(more + " ")
			continue
		}
		cur.WriteString(line)
		op, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstr{strings.ToUpper(op), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// TestDockerfile checks the image's recipe against the repository and the
// binary, then runs the binary with the image's environment and its health
// check, as the container would.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	instrs := parseDockerfile(t)
	settings := settingEnvs(t)
	var froms []string
	env := map[string]string{}
	var user, expose, volume, entry, health string
	var copies, runs []string
	for _, in := range instrs {
		switch in.op {
		case "FROM":
			froms = append(froms, in.args)
		case "ENV":
			for _, kv := range strings.Fields(in.args) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		case "USER":
			user = in.args
		case "EXPOSE":
			expose = in.args
		case "VOLUME":
			volume = in.args
		case "ENTRYPOINT":
			entry = in.args
		case "HEALTHCHECK":
			health = in.args
		case "COPY":
			copies = append(copies, in.args)
		case "RUN":
			runs = append(runs, in.args)
		}
	}
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if len(froms) != 2 || goVer == nil || !strings.HasPrefix(froms[0], "golang:"+string(goVer[1])+" ") {
		t.Errorf("FROM %v: want a golang:%s builder and one final stage", froms, goVer[1])
	}
	if len(froms) == 2 && !strings.HasPrefix(froms[1], "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %s, want distroless/static", froms[1])
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0") {
		t.Errorf("USER %q: the image must not run as root", user)
	}
	checkEnvNames(t, "the Dockerfile", env, settings)
	if env["HUBBUB_DATA"] != volume {
		t.Errorf("VOLUME %s but HUBBUB_DATA=%s", volume, env["HUBBUB_DATA"])
	}
	if _, port, _ := strings.Cut(env["HUBBUB_LISTEN"], ":"); port != expose {
		t.Errorf("EXPOSE %s but HUBBUB_LISTEN=%s", expose, env["HUBBUB_LISTEN"])
	}
	if !slices.ContainsFunc(copies, func(c string) bool { return strings.HasSuffix(c, " /usr/local/bin/hubbub") }) ||
		entry != `["/usr/local/bin/hubbub"]` {
		t.Errorf("ENTRYPOINT %s, COPY %v: want the binary at /usr/local/bin/hubbub", entry, copies)
	}
	hc := regexp.MustCompile(`CMD \["/usr/local/bin/hubbub", "healthcheck"(.*)\]`).FindStringSubmatch(health)
	if hc == nil {
		t.Errorf("HEALTHCHECK %q does not run hubbub healthcheck", health)
	} else {
		checkCommand(t, "the HEALTHCHECK", []string{"healthcheck"})
	}
	if !slices.ContainsFunc(runs, func(r string) bool { return strings.Contains(r, "deploy/build-static.sh /out/hubbub") }) {
		t.Errorf("no RUN builds with deploy/build-static.sh: %v", runs)
	}
	if fi, err := os.Stat("../deploy/build-static.sh"); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("deploy/build-static.sh is missing or not executable (%v)", err)
	}
	if t.Failed() {
		return
	}

	// The container, minus the container: the image's environment (its
	// port and data directory replaced by this test's), and the health
	// check run with that same environment.
	env["HUBBUB_LISTEN"] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	env["HUBBUB_DATA"] = t.TempDir()
	h := startHubEnv(t, env["HUBBUB_DATA"], envList(env), "--listen", env["HUBBUB_LISTEN"])
	for _, args := range [][]string{{"healthcheck"}, {"healthcheck", "--ready"}} {
		if code, out := runCLI(t, envList(env), args...); code != 0 || !strings.Contains(out, env["HUBBUB_LISTEN"]) {
			t.Errorf("hubbub %v in the image's environment: exit %d: %s", args, code, out)
		}
	}
	if code := h.Stop(); code != 0 {
		t.Errorf("the hub exited %d on SIGTERM", code)
	}
	if code, out := runCLI(t, envList(env), "healthcheck"); code != 1 {
		t.Errorf("healthcheck with the hub stopped: exit %d: %s", code, out)
	}
}

// --- systemd --------------------------------------------------------------

// TestSystemdUnit checks deploy/hubbub.service: systemd-analyze verifies it
// and rates its exposure at most 2.0, its settings are the binary's, and
// the binary runs with its environment.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../deploy/hubbub.service")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		keys[k] = append(keys[k], v)
	}
	env := map[string]string{}
	for _, e := range keys["Environment"] {
		k, v, _ := strings.Cut(e, "=")
		env[k] = v
	}
	checkEnvNames(t, "hubbub.service", env, settingEnvs(t))
	for k, want := range map[string]string{"DynamicUser": "yes", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
		"StateDirectory": "hubbub", "ProtectHome": "yes", "PrivateTmp": "yes"} {
		if got := keys[k]; len(got) != 1 || got[0] != want {
			t.Errorf("hubbub.service: %s=%v, want %s", k, got, want)
		}
	}
	if env["HUBBUB_DATA"] != "/var/lib/"+strings.Join(keys["StateDirectory"], "") {
		t.Errorf("HUBBUB_DATA=%s is not the StateDirectory (/var/lib/%v)", env["HUBBUB_DATA"], keys["StateDirectory"])
	}
	exec0 := strings.Fields(strings.Join(keys["ExecStart"], ""))
	if len(exec0) < 2 || exec0[0] != "/usr/local/bin/hubbub" {
		t.Fatalf("ExecStart=%v", exec0)
	}
	checkCommand(t, "ExecStart", exec0[1:])

	// The binary with the unit's environment (its data directory and port
	// replaced by this test's).
	env["HUBBUB_DATA"] = t.TempDir()
	env["HUBBUB_LISTEN"] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	h := startHubEnv(t, env["HUBBUB_DATA"], envList(env), "--listen", env["HUBBUB_LISTEN"])
	if code, out := runCLI(t, envList(env), "healthcheck", "--ready"); code != 0 {
		t.Errorf("healthcheck with the unit's environment: exit %d: %s", code, out)
	}
	h.Stop()

	// systemd's own checks, on a copy whose ExecStart names the binary
	// under test (verify checks that it exists).
	bin := requireTool(t, "systemd-analyze", "HUBBUB_REQUIRE_SYSTEMD", "apt-get install -y systemd")
	unit := filepath.Join(t.TempDir(), "hubbub.service")
	if err := os.WriteFile(unit, []byte(strings.Replace(string(raw), "ExecStart=/usr/local/bin/hubbub", "ExecStart="+hubBinary, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	// verify exits 0 on unknown keys and bad values, which it only
	// reports: any output is a failure.
	if out, err := exec.Command(bin, "verify", unit).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "security", "--offline=true", "--threshold=20", unit).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze security rates the unit above 2.0 (%v):\n%s", err, clipString(string(out), 3000))
	}
}
