package pull

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/serve"
	"github.com/osupdate/os-update/repo/serve/servetest"
)

// TestFaultInjection is required test 3: through a proxy that drops
// connections, truncates, flips bytes, stalls and answers 500, every pull
// either succeeds with fsck clean or fails with an error naming a URL with
// fsck clean; once the faults stop, a pull into the same repository
// succeeds.
func TestFaultInjection(t *testing.T) {
	f := newFixture(t)
	opts := Options{
		Refs:         []string{"os/main"},
		Workers:      4,
		Retries:      2,
		RetryBackoff: time.Millisecond,
		StallTimeout: 300 * time.Millisecond,
		BatchObjects: 10,
	}
	var ok, failed int
	for seed := int64(1); seed <= 6; seed++ {
		proxy := newFaultProxy(f.srv.URL, seed, 0.25)
		psrv := servetest.ServeHandler(t, proxy, nil)
		local := newLocal(t, repo.ModeBare)
		_, err := Pull(context.Background(), local, f.source(t, psrv.URL), opts)
		fsckClean(t, local)
		if err == nil {
			ok++
			if got, _ := local.ReadRef("origin", "os/main"); got != f.commit {
				t.Fatalf("seed %d: ref %s", seed, got)
			}
			checkoutEqual(t, local, f.commit, f.tree)
		} else {
			failed++
			if !strings.Contains(err.Error(), "GET "+psrv.URL+"/") {
				t.Fatalf("seed %d: error does not name the URL: %v", seed, err)
			}
			if _, rerr := local.ReadRef("origin", "os/main"); rerr == nil {
				t.Fatalf("seed %d: failed pull moved the ref", seed)
			}
		}
		t.Logf("seed %d: faults %v, err %v", seed, proxy.faults, err)
		// Faults stop: the same repository completes.
		proxy.enabled.Store(false)
		if _, err := Pull(context.Background(), local, f.source(t, psrv.URL), opts); err != nil {
			t.Fatalf("seed %d: pull after faults stopped: %v", seed, err)
		}
		fsckClean(t, local)
		checkoutEqual(t, local, f.commit, f.tree)
	}
	t.Logf("%d pulls survived the faults, %d failed cleanly", ok, failed)
}

// TestResume: a pull cut off by an outage leaves verified objects and a
// partial commit; the next pull fetches only what is missing.
func TestResume(t *testing.T) {
	f := newFixture(t)
	proxy := newFaultProxy(f.srv.URL, 1, 0)
	proxy.failAfter.Store(40)
	psrv := servetest.ServeHandler(t, proxy, nil)
	local := newLocal(t, repo.ModeArchive)
	opts := Options{Refs: []string{"os/main"}, Workers: 2, Retries: 1, RetryBackoff: time.Millisecond, BatchObjects: 5, DisableDeltas: true}
	_, err := Pull(context.Background(), local, f.source(t, psrv.URL), opts)
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("pull through the outage: %v", err)
	}
	if !local.IsPartial(f.commit) {
		t.Fatal("interrupted pull did not leave the commit partial")
	}
	fsckClean(t, local)
	have := 0
	local.ListObjects(func(n object.Name) error {
		if n.Type == object.TypeFile {
			have++
		}
		return nil
	})
	if have == 0 {
		t.Fatal("no verified objects kept for the resume")
	}
	proxy.failAfter.Store(0)
	f.srv.Log.Reset()
	if _, err := Pull(context.Background(), local, f.source(t, f.srv.URL), opts); err != nil {
		t.Fatal(err)
	}
	total := 0
	local.ListObjects(func(n object.Name) error {
		if n.Type == object.TypeFile {
			total++
		}
		return nil
	})
	fetched := 0
	for _, e := range f.srv.Log.Entries() {
		if strings.HasSuffix(e.Path, ".filez") {
			fetched++
		}
	}
	if fetched != total-have {
		t.Fatalf("resume fetched %d content objects; %d were missing", fetched, total-have)
	}
	if local.IsPartial(f.commit) {
		t.Fatal("still partial")
	}
	fsckClean(t, local)
	checkoutEqual(t, local, f.commit, f.tree)
}

// TestHTTPErrors: 4xx fail at once naming the URL; redirect loops and a
// stalled server are cut off; cancellation stops the pull.
func TestHTTPErrors(t *testing.T) {
	f := newFixture(t)
	local := newLocal(t, repo.ModeBare)
	// Unknown ref.
	_, err := Pull(context.Background(), local, f.source(t, f.srv.URL), Options{Refs: []string{"nope"}})
	if err == nil || !strings.Contains(err.Error(), "not in the remote's summary") {
		t.Fatalf("unknown ref: %v", err)
	}
	// Wrong base path: summary 404 with summary verification on.
	_, err = Pull(context.Background(), local, f.source(t, f.srv.URL+"/nothing-here"), Options{Refs: []string{"os/main"}})
	if err == nil || !strings.Contains(err.Error(), f.srv.URL+"/nothing-here/summary") {
		t.Fatalf("missing summary: %v", err)
	}
	// Redirect loop.
	loop := servetest.ServeHandler(t, redirectLoop{}, nil)
	_, err = Pull(context.Background(), local, f.source(t, loop.URL), Options{Refs: []string{"os/main"}, RetryBackoff: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "redirects") {
		t.Fatalf("redirect loop: %v", err)
	}
	// A server that stalls every response.
	proxy := newFaultProxy(f.srv.URL, 1, 0)
	stall := servetest.ServeHandler(t, stallAll{proxy}, nil)
	start := time.Now()
	_, err = Pull(context.Background(), local, f.source(t, stall.URL), Options{Refs: []string{"os/main"}, Retries: 1, RetryBackoff: time.Millisecond, StallTimeout: 200 * time.Millisecond})
	if err == nil {
		t.Fatal("stalled server: pull succeeded")
	}
	if time.Since(start) > 20*time.Second {
		t.Fatalf("stall not bounded: %v", time.Since(start))
	}
	// Cancellation.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Pull(ctx, local, f.source(t, f.srv.URL), Options{Refs: []string{"os/main"}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	fsckClean(t, local)
}

// replaceBody serves body instead of the real file for one path.
type replaceBody struct {
	next http.Handler
	path string
	body []byte
}

func (h replaceBody) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == h.path {
		w.Header().Set("Content-Length", strconv.Itoa(len(h.body)))
		w.Write(h.body)
		return
	}
	h.next.ServeHTTP(w, r)
}

// TestHostileObjects: a decompression bomb is cut at the size its header
// declares, an oversized dirtree is refused at the metadata cap, and a
// wrong object is refused by checksum; each error names the object, nothing
// of it is stored, and fsck stays clean.
func TestHostileObjects(t *testing.T) {
	f := newFixture(t)
	cm, err := f.served.LoadCommit(f.commit)
	if err != nil {
		t.Fatal(err)
	}
	// Find a content object somewhere in the tree.
	var file object.Checksum
	var walkFind func(c object.Checksum)
	walkFind = func(c object.Checksum) {
		d, _ := f.served.LoadDirTree(c)
		for _, fe := range d.Files {
			if file.IsZero() {
				file = fe.Checksum
			}
		}
		for _, de := range d.Dirs {
			walkFind(de.Tree)
		}
	}
	walkFind(cm.RootTree)

	// 64 MiB of zeros deflate to ~64 KiB; the header says 10 bytes.
	hdr, err := (&object.FileHeader{Mode: object.ModeRegular | 0o644}).FilezHeader(10)
	if err != nil {
		t.Fatal(err)
	}
	var bomb bytes.Buffer
	bomb.Write(hdr)
	zw, _ := flate.NewWriter(&bomb, flate.BestCompression)
	zeros := make([]byte, 1<<20)
	for i := 0; i < 64; i++ {
		zw.Write(zeros)
	}
	zw.Close()

	h, err := serve.NewHandler(f.served.Path(), serve.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path string
		body       []byte
		want       string
	}{
		{"bomb", "/objects/" + object.LoosePath(file, object.TypeFile, true), bomb.Bytes(), file.String()},
		{"oversized dirtree", "/objects/" + object.LoosePath(cm.RootTree, object.TypeDirTree, true), make([]byte, repo.MaxMetadataSize+10), "limit"},
		{"wrong dirmeta", "/objects/" + object.LoosePath(cm.RootMeta, object.TypeDirMeta, true), []byte("not a dirmeta"), "checksum mismatch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := servetest.ServeHandler(t, replaceBody{next: h, path: tc.path, body: tc.body}, nil)
			local := newLocal(t, repo.ModeBare)
			_, err := Pull(context.Background(), local, f.source(t, srv.URL), Options{Refs: []string{"os/main"}, Retries: 1, RetryBackoff: time.Millisecond})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), srv.URL+tc.path) {
				t.Fatalf("pull: %v", err)
			}
			t.Logf("refused: %v", err)
			fsckClean(t, local)
			if ok, _ := local.HasObject(file, object.TypeFile); ok && tc.name == "bomb" {
				t.Fatal("bomb stored")
			}
			var size int64
			filepath.Walk(local.Path(), func(p string, fi os.FileInfo, err error) error {
				if err == nil && fi.Mode().IsRegular() {
					size += fi.Size()
				}
				return nil
			})
			if size > 8<<20 {
				t.Fatalf("repository grew to %d bytes", size)
			}
		})
	}
}
