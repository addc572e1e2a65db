package pull

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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

// streamFixture is a from-scratch delta cut into several parts, served
// through handler wrap.
func streamFixture(t *testing.T) (*fixture, *delta.Superblock) {
	t.Helper()
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
	f.commit = servetest.Commit(t, f.served, f.tree, "os/main", "big", []sign.Signer{f.signer}, nil)
	if _, err := delta.Generate(context.Background(), f.served, object.ZeroChecksum, f.commit, delta.GenerateOptions{MaxChunkSize: 16 << 10, NoFallbacks: true}); err != nil {
		t.Fatal(err)
	}
	servetest.Commit(t, f.served, f.tree, "os/unused", "refresh summary", nil, []sign.Signer{f.signer})
	raw, err := os.ReadFile(filepath.Join(f.served.Path(), delta.SuperblockPath(object.ZeroChecksum, f.commit)))
	if err != nil {
		t.Fatal(err)
	}
	sb, err := delta.DecodeSuperblock(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(sb.Parts) < 3 {
		t.Fatalf("the delta has %d parts; the test needs several", len(sb.Parts))
	}
	return f, sb
}

func countContent(t *testing.T, r *repo.Repo) int {
	t.Helper()
	n := 0
	if err := r.ListObjects(func(o object.Name) error {
		if o.Type == object.TypeFile {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDeltaPartCorruptWhileStreaming: a part whose bytes do not match
// the superblock's checksum is refused when the stream ends (the apply
// hashes it as it decodes it), none of the delta's objects becomes
// visible, and the bad bytes are not kept in the part cache; the parts
// before it that verified are.
func TestDeltaPartCorruptWhileStreaming(t *testing.T) {
	f, sb := streamFixture(t)
	h, err := serve.NewHandler(f.served.Path(), serve.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bad := "/" + delta.PartPath(object.ZeroChecksum, f.commit, 1)
	srv := servetest.ServeHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == bad:
			b, err := os.ReadFile(filepath.Join(f.served.Path(), filepath.FromSlash(bad)))
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			b[len(b)-5] ^= 0x20
			w.Write(b)
		case strings.HasSuffix(r.URL.Path, ".filez"):
			// No object walk: what the failed delta left is what counts.
			http.NotFound(w, r)
		default:
			h.ServeHTTP(w, r)
		}
	}), nil)
	local := newLocal(t, repo.ModeBare)
	res, err := Pull(context.Background(), local, f.source(t, srv.URL), Options{Refs: []string{"os/main"}, Retries: 1})
	if err == nil {
		t.Fatal("pull succeeded with a corrupt part and no objects to walk")
	}
	if res == nil || len(res.DeltaFailures) != 1 || !errors.Is(res.DeltaFailures[0], delta.ErrMalformed) ||
		!strings.Contains(res.DeltaFailures[0].Error(), "part 1") || !strings.Contains(res.DeltaFailures[0].Error(), "checksum mismatch") {
		t.Fatalf("delta failures %v, want one malformed part 1 (checksum mismatch)", res)
	}
	if n := countContent(t, local); n != 0 {
		t.Fatalf("%d content objects visible after the delta failed", n)
	}
	if c, err := local.ReadRef("origin", "os/main"); err == nil {
		t.Fatalf("ref moved to %s", c)
	}
	cache := newPartCache(local, delta.Name{To: f.commit})
	if _, err := os.Stat(cache.path(1, sb.Parts[1])); err == nil {
		t.Fatal("the corrupt part was cached")
	}
	if _, err := os.Stat(cache.path(1, sb.Parts[1]) + ".partial"); err == nil {
		t.Fatal("the corrupt part's bytes were kept for a resume")
	}
	if !cache.has(0, sb.Parts[0]) {
		t.Fatal("part 0, which verified, was not cached")
	}
	fsckClean(t, local)
}

// TestDeltaCancelledMidPart: a pull cancelled while a part streams in
// makes no object visible, keeps the verified parts and the start of the
// one cut off, and the next pull fetches only the rest.
func TestDeltaCancelledMidPart(t *testing.T) {
	f, sb := streamFixture(t)
	h, err := serve.NewHandler(f.served.Path(), serve.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := "/" + delta.PartPath(object.ZeroChecksum, f.commit, 2)
	var mu sync.Mutex
	requests := map[string][]string{}
	srv := servetest.ServeHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests[r.URL.Path] = append(requests[r.URL.Path], r.Header.Get("Range"))
		n := len(requests[r.URL.Path])
		mu.Unlock()
		if r.URL.Path == stop && n == 1 {
			// Half the part, then the pull is cancelled mid-stream.
			b, err := os.ReadFile(filepath.Join(f.served.Path(), filepath.FromSlash(stop)))
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.Write(b[:len(b)/2])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		h.ServeHTTP(w, r)
	}), nil)
	local := newLocal(t, repo.ModeBare)
	cache := newPartCache(local, delta.Name{To: f.commit})
	partial := cache.path(2, sb.Parts[2]) + ".partial"
	go func() {
		// Cancelled once the first half of part 2 has been passed on.
		defer cancel()
		for ctx.Err() == nil {
			if fi, err := os.Stat(partial); err == nil && fi.Size() >= int64(sb.Parts[2].Size/2) {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	_, err = Pull(ctx, local, f.source(t, srv.URL), Options{Refs: []string{"os/main"}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled pull: %v", err)
	}
	if n := countContent(t, local); n != 0 {
		t.Fatalf("%d content objects visible after a cancelled delta", n)
	}
	for i := 0; i < 2; i++ {
		if !cache.has(i, sb.Parts[i]) {
			t.Fatalf("part %d was not cached", i)
		}
	}
	fi, err := os.Stat(partial)
	if err != nil || fi.Size() == 0 {
		t.Fatalf("the start of part 2 was not kept: %v", err)
	}
	kept := fi.Size()
	fsckClean(t, local)

	if _, err := Pull(context.Background(), local, f.source(t, srv.URL), Options{Refs: []string{"os/main"}}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range sb.Parts {
		p := "/" + delta.PartPath(object.ZeroChecksum, f.commit, i)
		want := []string{""}
		if i == 2 {
			want = []string{"", "bytes=" + strconv.FormatInt(kept, 10) + "-"}
		}
		if got := requests[p]; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("part %d requested with ranges %q, want %q", i, got, want)
		}
	}
	fsckClean(t, local)
	checkoutEqual(t, local, f.commit, f.tree)
}

// TestDeltaCachedPartDamaged: a cached part that no longer hashes to its
// checksum (the cache is not fsynced; a crash can leave one) is fetched
// again, and the delta applies.
func TestDeltaCachedPartDamaged(t *testing.T) {
	f, sb := streamFixture(t)
	local := newLocal(t, repo.ModeBare)
	cache := newPartCache(local, delta.Name{To: f.commit})
	os.MkdirAll(cache.dir, 0o755)
	zeros := make([]byte, sb.Parts[0].Size)
	if err := os.WriteFile(cache.path(0, sb.Parts[0]), zeros, 0o644); err != nil {
		t.Fatal(err)
	}
	f.srv.Log.Reset()
	res, err := Pull(context.Background(), local, f.source(t, f.srv.URL), Options{Refs: []string{"os/main"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.DeltasUsed != 1 || len(res.DeltaFailures) != 0 {
		t.Fatalf("a damaged cached part made the delta fail: %+v", res)
	}
	p0 := "/" + delta.PartPath(object.ZeroChecksum, f.commit, 0)
	fetched := 0
	for _, e := range f.srv.Log.Entries() {
		if e.Path == p0 {
			fetched++
		}
	}
	if fetched != 1 {
		t.Fatalf("part 0 fetched %d times, want once", fetched)
	}
	fsckClean(t, local)
	checkoutEqual(t, local, f.commit, f.tree)
}
