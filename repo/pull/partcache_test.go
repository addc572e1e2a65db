package pull

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/delta"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/serve"
	"github.com/osupdate/os-update/repo/serve/servetest"
	"github.com/osupdate/os-update/repo/sign"
)

// cutOnce serves a repository, but the first request for each path in cut
// gets half the file and a closed connection (a lost connection).
type cutOnce struct {
	h      http.Handler
	dir    string
	mu     sync.Mutex
	cut    map[string]bool
	n      map[string]int
	ranges map[string][]string // Range headers asked for, by path
}

func (c *cutOnce) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.n[r.URL.Path]++
	c.ranges[r.URL.Path] = append(c.ranges[r.URL.Path], r.Header.Get("Range"))
	first := c.cut[r.URL.Path]
	delete(c.cut, r.URL.Path)
	c.mu.Unlock()
	if first {
		b, err := os.ReadFile(filepath.Join(c.dir, filepath.FromSlash(r.URL.Path)))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(200)
		w.Write(b[:len(b)/2])
		w.(http.Flusher).Flush()
		hijackClose(w)
		return
	}
	c.h.ServeHTTP(w, r)
}

// TestDeltaPartCutOffIsRetried: a part whose transfer breaks off is
// requested again from where it broke off; the delta is not given up for
// the object walk, and every other part is fetched once.
func TestDeltaPartCutOffIsRetried(t *testing.T) {
	f := newFixture(t)
	big := filepath.Join(f.tree, "usr/share/big")
	os.MkdirAll(big, 0o755)
	for i := 0; i < 4; i++ {
		b := make([]byte, 64<<10)
		for j := range b {
			b[j] = byte(j*7 + i*13 + j/251)
		}
		os.WriteFile(filepath.Join(big, "f"+strconv.Itoa(i)), b, 0o644)
	}
	c := servetest.Commit(t, f.served, f.tree, "os/main", "big", []sign.Signer{f.signer}, nil)
	if _, err := delta.Generate(context.Background(), f.served, object.ZeroChecksum, c, delta.GenerateOptions{MaxChunkSize: 16 << 10, NoFallbacks: true}); err != nil {
		t.Fatal(err)
	}
	servetest.Commit(t, f.served, f.tree, "os/unused", "refresh summary", nil, []sign.Signer{f.signer})
	h, err := serve.NewHandler(f.served.Path(), serve.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cutPath := "/" + delta.PartPath(object.ZeroChecksum, c, 1)
	co := &cutOnce{h: h, dir: f.served.Path(), cut: map[string]bool{cutPath: true}, n: map[string]int{}, ranges: map[string][]string{}}
	srv := servetest.ServeHandler(t, co, nil)
	local := newLocal(t, repo.ModeBare)
	res, err := Pull(context.Background(), local, f.source(t, srv.URL), Options{Refs: []string{"os/main"}, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.DeltasUsed != 1 || len(res.DeltaFailures) != 0 {
		t.Fatalf("a part cut off once made the delta fail: %+v", res)
	}
	co.mu.Lock()
	defer co.mu.Unlock()
	parts := 0
	for p, n := range co.n {
		if strings.HasSuffix(p, ".filez") {
			t.Fatalf("fetched %s: the delta was given up", p)
		}
		if !strings.HasPrefix(p, "/deltas/") || strings.HasSuffix(p, "superblock") {
			continue
		}
		parts++
		want := 1
		if p == cutPath {
			want = 2
		}
		if n != want {
			t.Errorf("%s requested %d times, want %d", p, n, want)
		}
	}
	size := 0
	if fi, err := os.Stat(filepath.Join(f.served.Path(), filepath.FromSlash(cutPath))); err == nil {
		size = int(fi.Size())
	}
	if got, want := strings.Join(co.ranges[cutPath], ","), ",bytes="+strconv.Itoa(size/2)+"-"; got != want {
		t.Errorf("the part cut off was asked for with ranges %q, want %q (the rest only)", got, want)
	}
	if parts < 3 {
		t.Fatalf("the delta has %d parts; the test needs several", parts)
	}
	fsckClean(t, local)
	checkoutEqual(t, local, c, f.tree)
	if des, _ := os.ReadDir(filepath.Join(local.Path(), "tmp/cache/deltaparts")); len(des) != 0 {
		t.Fatalf("cached parts left after the delta was applied: %v", des)
	}
}

// TestDeltaPartialPartDamaged: bytes kept from an earlier transfer that do
// not verify are fetched again from nothing, and the delta still applies.
func TestDeltaPartialPartDamaged(t *testing.T) {
	f := newFixture(t)
	if _, err := delta.Generate(context.Background(), f.served, object.ZeroChecksum, f.commit, delta.GenerateOptions{MaxChunkSize: 16 << 10, NoFallbacks: true}); err != nil {
		t.Fatal(err)
	}
	servetest.Commit(t, f.served, f.tree, "os/unused", "refresh summary", nil, []sign.Signer{f.signer})
	sbBytes, err := os.ReadFile(filepath.Join(f.served.Path(), delta.SuperblockPath(object.ZeroChecksum, f.commit)))
	if err != nil {
		t.Fatal(err)
	}
	sb, err := delta.DecodeSuperblock(sbBytes)
	if err != nil {
		t.Fatal(err)
	}
	local := newLocal(t, repo.ModeBare)
	cache := newPartCache(local, delta.Name{To: f.commit})
	os.MkdirAll(cache.dir, 0o755)
	partial := cache.path(0, sb.Parts[0]) + ".partial"
	if err := os.WriteFile(partial, []byte("not the start of part 0"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := serve.NewHandler(f.served.Path(), serve.Options{})
	if err != nil {
		t.Fatal(err)
	}
	co := &cutOnce{h: h, dir: f.served.Path(), cut: map[string]bool{}, n: map[string]int{}, ranges: map[string][]string{}}
	srv := servetest.ServeHandler(t, co, nil)
	res, err := Pull(context.Background(), local, f.source(t, srv.URL), Options{Refs: []string{"os/main"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.DeltasUsed != 1 || len(res.DeltaFailures) != 0 {
		t.Fatalf("a damaged partial part made the delta fail: %+v", res)
	}
	co.mu.Lock()
	defer co.mu.Unlock()
	p0 := "/" + delta.PartPath(object.ZeroChecksum, f.commit, 0)
	if got := strings.Join(co.ranges[p0], ","); got != "bytes=23-," {
		t.Errorf("part 0 asked for with ranges %q, want the rest, then all of it", got)
	}
	fsckClean(t, local)
	checkoutEqual(t, local, f.commit, f.tree)
}
