package pull

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/delta"
	"github.com/osupdate/os-update/repo/serve/servetest"
	"github.com/osupdate/os-update/repo/sign"
)

// TestDeltaProgressCountsBytes: an update by static delta reports the
// bytes it fetched (equal to what the server sent) and expected, the
// delta's parts, and few objects fetched one by one, not the whole
// tree's objects.
func TestDeltaProgressCountsBytes(t *testing.T) {
	f := newFixture(t)
	local := newLocal(t, repo.ModeBare)
	if _, err := Pull(context.Background(), local, f.source(t, f.srv.URL), Options{Refs: []string{"os/main"}}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(f.tree, "usr/share/many/f010"), []byte("updated"), 0o644)
	c2 := servetest.Commit(t, f.served, f.tree, "os/main", "second", []sign.Signer{f.signer}, nil)
	if _, err := delta.Generate(context.Background(), f.served, f.commit, c2, delta.GenerateOptions{}); err != nil {
		t.Fatal(err)
	}
	servetest.Commit(t, f.served, f.tree, "os/unused", "refresh summary", nil, []sign.Signer{f.signer})
	f.srv.Log.Reset()

	var mu sync.Mutex
	var snaps []Progress
	res, err := Pull(context.Background(), local, f.source(t, f.srv.URL), Options{Refs: []string{"os/main"},
		ProgressInterval: time.Millisecond,
		Progress:         func(p Progress) { mu.Lock(); snaps = append(snaps, p); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	if res.DeltasUsed != 1 || res.DeltaParts < 1 {
		t.Fatalf("delta not used: %+v", res)
	}
	var served int64
	for _, e := range f.srv.Log.Entries() {
		if e.Status/100 == 2 {
			served += e.Bytes
		}
	}
	last := snaps[len(snaps)-1]
	t.Logf("result %+v; last progress %+v; server sent %d bytes", *res, last, served)
	if last.Stage != "done" || last.BytesDone != served || last.BytesDone != res.BytesFetched || last.BytesTotal != last.BytesDone {
		t.Fatalf("last progress %+v: want done with %d bytes of %d", last, served, served)
	}
	if last.PartsDone != last.PartsTotal || last.PartsTotal < 1 {
		t.Fatalf("parts %d of %d", last.PartsDone, last.PartsTotal)
	}
	if last.ObjectsFetched != res.ObjectsFetched || last.ObjectsFetched > 3 {
		t.Fatalf("objects fetched %d (result %d): a delta brings the objects", last.ObjectsFetched, res.ObjectsFetched)
	}
	// Once the superblock is read, the total is known and never below
	// what was fetched.
	sawTotal := false
	for _, p := range snaps {
		if p.BytesTotal > 0 {
			sawTotal = true
			if p.BytesDone > p.BytesTotal {
				t.Fatalf("progress %+v: more done than expected", p)
			}
		} else if sawTotal && p.Stage != "delta" {
			t.Fatalf("progress %+v: the delta's byte total was dropped", p)
		}
	}
	if !sawTotal {
		t.Fatal("no progress with an expected byte total")
	}
}

// TestDeadServerRetriesReported: against a server that refuses
// connections each retry is reported once, with its reason and backoff.
func TestDeadServerRetriesReported(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	local := newLocal(t, repo.ModeBare)
	var events []RetryEvent
	_, err = Pull(context.Background(), local, &Source{Name: "origin", URL: url}, Options{Refs: []string{"os/main"},
		Retries: 3, RetryBackoff: 10 * time.Millisecond,
		Retry: func(e RetryEvent) { events = append(events, e) }})
	if err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("pull from a dead server: %v", err)
	}
	if len(events) != 3 {
		t.Fatalf("%d retries reported, want 3: %+v", len(events), events)
	}
	for i, e := range events {
		if e.Attempt != i+1 || e.Attempts != 3 || e.Backoff <= 0 || !strings.HasSuffix(e.URL, "/summary.sig") ||
			!errors.Is(e.Err, syscall.ECONNREFUSED) {
			t.Fatalf("retry %d: %+v", i, e)
		}
	}
}
