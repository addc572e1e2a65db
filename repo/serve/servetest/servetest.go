// Package servetest builds signed archive repositories and serves them on
// 127.0.0.1 with an access log, for tests of serving and pulling.
package servetest

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/serve"
	"github.com/osupdate/os-update/repo/sign"
	"github.com/osupdate/os-update/repo/summary"
)

// Log is a concurrency-safe access log.
type Log struct {
	mu      sync.Mutex
	entries []serve.LogEntry
}

// Add records an entry.
func (l *Log) Add(e serve.LogEntry) {
	l.mu.Lock()
	l.entries = append(l.entries, e)
	l.mu.Unlock()
}

// Entries returns a copy of the log.
func (l *Log) Entries() []serve.LogEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]serve.LogEntry(nil), l.entries...)
}

// Reset empties the log.
func (l *Log) Reset() {
	l.mu.Lock()
	l.entries = nil
	l.mu.Unlock()
}

// Server is a running repository server.
type Server struct {
	URL string
	Log *Log
}

// Serve serves the archive repository at dir on 127.0.0.1 until the test
// ends.
func Serve(t testing.TB, dir string) *Server {
	t.Helper()
	log := &Log{}
	h, err := serve.NewHandler(dir, serve.Options{Log: log.Add})
	if err != nil {
		t.Fatal(err)
	}
	return ServeHandler(t, h, log)
}

// ServeHandler serves any handler on 127.0.0.1 until the test ends.
func ServeHandler(t testing.TB, h http.Handler, log *Log) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := serve.NewServer(h)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &Server{URL: "http://" + ln.Addr().String(), Log: log}
}

// Commit commits tree to branch in the repository at dir, signs it with
// signers, and regenerates the summary signed by summarySigners.
func Commit(t testing.TB, r *repo.Repo, tree, branch, subject string, signers, summarySigners []sign.Signer) object.Checksum {
	t.Helper()
	c, err := r.CommitDir(context.Background(), tree, repo.CommitOptions{Branch: branch, Subject: subject})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range signers {
		if err := sign.SignCommit(r, c, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := summary.Update(r, summary.Options{Signers: summarySigners}); err != nil {
		t.Fatal(err)
	}
	return c
}

// Init creates an archive repository under a temporary directory.
func Init(t testing.TB) *repo.Repo {
	t.Helper()
	r, err := repo.Init(filepath.Join(t.TempDir(), "served"), repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	r.SetFsync(false)
	t.Cleanup(func() { r.Close() })
	return r
}
