// Package serve publishes an archive repository over HTTP, read-only, the
// way `ostree pull` and our own pull expect it: static files with Range
// requests, ETag and Last-Modified validators, and nothing outside the
// repository's public paths.
//
// Files are opened through an os.Root, so neither "..", nor absolute
// paths, nor symlinks inside the repository can reach anything outside it.
package serve

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/osupdate/os-update/repo"
)

// LogEntry is one served request.
type LogEntry struct {
	Method string
	Path   string
	Status int
	Bytes  int64
	Range  string
}

// Options controls the handler.
type Options struct {
	// Log, if set, is called after every request (the access log).
	Log func(LogEntry)
	// AllowNonArchive serves a repository of another mode (its content
	// objects are then useless to pull clients; only for inspection).
	AllowNonArchive bool
}

// publicPrefixes are the repository paths a pull may ask for.
var publicPrefixes = []string{"objects/", "refs/heads/", "refs/mirrors/", "deltas/", "delta-indexes/", "extensions/"}
var publicFiles = map[string]bool{"config": true, "summary": true, "summary.sig": true}

func isPublic(p string) bool {
	if publicFiles[p] {
		return true
	}
	for _, pre := range publicPrefixes {
		if strings.HasPrefix(p, pre) && len(p) > len(pre) {
			return true
		}
	}
	return false
}

// Handler serves one repository.
type Handler struct {
	root *os.Root
	opts Options
	reqs atomic.Int64
}

// NewHandler opens the repository at dir for serving. Close releases it.
func NewHandler(dir string, opts Options) (*Handler, error) {
	r, err := repo.Open(dir)
	if err != nil {
		return nil, err
	}
	mode := r.Mode()
	r.Close()
	if mode != repo.ModeArchive && !opts.AllowNonArchive {
		return nil, fmt.Errorf("serve %s: repository mode is %s; pull clients need an archive repository", dir, mode)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("serve %s: %w", dir, err)
	}
	return &Handler{root: root, opts: opts}, nil
}

// Close releases the repository directory.
func (h *Handler) Close() error { return h.root.Close() }

// Requests returns how many requests were served.
func (h *Handler) Requests() int64 { return h.reqs.Load() }

type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *countingWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	h.reqs.Add(1)
	cw := &countingWriter{ResponseWriter: w}
	h.serve(cw, req)
	if h.opts.Log != nil {
		h.opts.Log(LogEntry{Method: req.Method, Path: req.URL.Path, Status: cw.status, Bytes: cw.n, Range: req.Header.Get("Range")})
	}
}

func (h *Handler) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "read-only repository", http.StatusMethodNotAllowed)
		return
	}
	p := strings.TrimPrefix(req.URL.Path, "/")
	// Reject rather than clean: a client sending "..", "//" or "." is
	// not a pull client.
	if p == "" || path.Clean(p) != p || strings.Contains(p, "\x00") || !isPublic(p) {
		http.NotFound(w, req)
		return
	}
	f, err := h.root.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			http.NotFound(w, req)
			return
		}
		// Escapes through symlinks land here too.
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, "stat failed", http.StatusInternalServerError)
		return
	}
	if !st.Mode().IsRegular() {
		http.NotFound(w, req)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", contentType(p))
	hdr.Set("ETag", etag(st))
	hdr.Set("X-Content-Type-Options", "nosniff")
	if strings.HasPrefix(p, "objects/") || strings.HasPrefix(p, "deltas/") {
		// Content-addressed: never changes under a name (detached
		// metadata excepted, it may gain signatures).
		if !strings.HasSuffix(p, ".commitmeta") {
			hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
		}
	} else {
		hdr.Set("Cache-Control", "no-cache")
	}
	// ServeContent does Range, If-Range, If-None-Match (with the ETag
	// set above), If-Modified-Since and HEAD.
	http.ServeContent(w, req, "", st.ModTime(), f)
}

func etag(st fs.FileInfo) string {
	var ino uint64
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = s.Ino
	}
	return `"` + strconv.FormatUint(ino, 16) + "-" + strconv.FormatInt(st.Size(), 16) + "-" + strconv.FormatInt(st.ModTime().UnixNano(), 16) + `"`
}

func contentType(p string) string {
	switch {
	case p == "config" || strings.HasPrefix(p, "refs/"):
		return "text/plain; charset=utf-8"
	default:
		return "application/octet-stream"
	}
}

// NewServer returns an http.Server with timeouts suited to a repository:
// slow clients cannot hold a connection without sending headers, idle
// keep-alive connections are closed, and a single response may take as
// long as a large delta part needs on a slow link.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// ListenAndServe serves dir on addr until ctx ends; ready, if set, is
// called with the bound address (useful with port 0).
func ListenAndServe(ctx context.Context, dir, addr string, opts Options, ready func(net.Addr)) error {
	h, err := NewHandler(dir, opts)
	if err != nil {
		return err
	}
	defer h.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	srv := NewServer(h)
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
		return nil
	}
}
