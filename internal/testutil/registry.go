package testutil

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"testing"
	"time"
)

// Registry is Debian's docker-registry serving plain HTTP on 127.0.0.1,
// with its storage in a temporary directory.
type Registry struct {
	Addr string // host:port
	Log  string // path of its access log
}

// StartRegistry starts a registry for the test; extraConfig is YAML
// appended to its configuration (an auth section, for example). It is
// stopped when the test ends.
func StartRegistry(t *testing.T, extraConfig string) Registry {
	t.Helper()
	bin := RequireTool(t, "docker-registry")
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := filepath.Join(dir, "config.yml")
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n%s",
		filepath.Join(dir, "data"), addr, extraConfig)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "registry.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		logf.Close()
	})
	// Generous: a loaded machine may take long to start it.
	deadline := time.Now().Add(90 * time.Second)
	for {
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return Registry{Addr: addr, Log: logPath}
			}
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("docker-registry exited: %v\n%s", err, b)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("docker-registry did not answer on %s\n%s", addr, b)
		}
	}
}

var registryBlobGet = regexp.MustCompile(`"GET /v2/[^ ]+/blobs/(sha256:[0-9a-f]{64}) HTTP`)

// LogSize is the current size of the access log, an offset for BlobGets.
func (r Registry) LogSize(t *testing.T) int {
	t.Helper()
	st, err := os.Stat(r.Log)
	if err != nil {
		t.Fatal(err)
	}
	return int(st.Size())
}

// BlobGets lists, sorted, every GET of a blob after offset bytes of the
// access log (a blob fetched twice is listed twice), leaving out those in
// skip.
func (r Registry) BlobGets(t *testing.T, offset int, skip ...string) []string {
	t.Helper()
	b, err := os.ReadFile(r.Log)
	if err != nil {
		t.Fatal(err)
	}
	skipped := map[string]bool{}
	for _, s := range skip {
		skipped[s] = true
	}
	var out []string
	for _, m := range registryBlobGet.FindAllStringSubmatch(string(b[offset:]), -1) {
		if !skipped[m[1]] {
			out = append(out, m[1])
		}
	}
	sort.Strings(out)
	return out
}
