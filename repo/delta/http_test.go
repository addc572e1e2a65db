package delta

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/serve"
	"github.com/osupdate/os-update/repo/summary"
)

// TestOstreePullOurDeltas serves a repository whose deltas we generated
// (listed in a summary we wrote) and lets `ostree pull` fetch a fresh
// commit and then an update through them, checking from the access log
// that the deltas, and not single objects, carried the content.
func TestOstreePullOurDeltas(t *testing.T) {
	ostree := testutil.RequireTool(t, "ostree")
	ctx := context.Background()
	src, c, dirs := commitVersions(t, repo.ModeArchive, 2)
	a, b := c[0], c[1]
	// The from-empty delta leaves its larger files as fallbacks, which
	// ostree must fetch as plain objects.
	st, err := Generate(ctx, src, object.Checksum{}, a, GenerateOptions{MinFallbackSize: 300_000})
	if err != nil {
		t.Fatal(err)
	}
	if st.Fallbacks == 0 {
		t.Fatalf("no fallbacks: %+v", st)
	}
	if _, err := Generate(ctx, src, a, b, GenerateOptions{}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var log []serve.LogEntry
	h, err := serve.NewHandler(src.Path(), serve.Options{Log: func(e serve.LogEntry) {
		mu.Lock()
		log = append(log, e)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	defer srv.Close()

	client := filepath.Join(t.TempDir(), "client")
	testutil.Run(t, ostree, "--repo="+client, "init", "--mode=bare")
	testutil.Run(t, ostree, "--repo="+client, "remote", "add", "--no-gpg-verify", "origin", "http://"+ln.Addr().String()+"/")

	pull := func(commit object.Checksum, want Name) {
		t.Helper()
		if err := src.SetRef("", "os", commit); err != nil {
			t.Fatal(err)
		}
		if _, err := summary.Update(src, summary.Options{}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		log = nil
		mu.Unlock()
		testutil.Run(t, ostree, "--repo="+client, "pull", "origin", "os")
		mu.Lock()
		defer mu.Unlock()
		var parts, filez int
		for _, e := range log {
			switch {
			case strings.HasSuffix(e.Path, ".filez"):
				filez++
			case strings.HasPrefix(strings.TrimPrefix(e.Path, "/"), PartPath(want.From, want.To, 0)) && e.Status == 200:
				parts++
			}
		}
		// ostree 2022.7 walks the commit while the delta part is being
		// applied and fetches some objects loose as well (it does so
		// with its own deltas too), so only the delta's use is asserted.
		if parts == 0 {
			t.Errorf("pull of %s fetched no delta part; log %+v", want, log)
		}
		t.Logf("pull of %s: %d delta parts, %d loose content objects fetched", want, parts, filez)
	}
	pull(a, Name{To: a})
	pull(b, Name{From: a, To: b})
	testutil.Run(t, ostree, "--repo="+client, "fsck")
	co := filepath.Join(t.TempDir(), "co")
	testutil.Run(t, ostree, "--repo="+client, "checkout", "origin:os", co)
	opts := testutil.TreeOptions{Owners: true}
	testutil.CompareTrees(t, testutil.SnapshotTree(t, dirs[1], opts), testutil.SnapshotTree(t, co, opts))
}
