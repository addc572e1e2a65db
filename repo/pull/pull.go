// Package pull fetches commits from an HTTP(S) archive repository into a
// local repository of any mode, the way libostree's pull does, with the
// trust order made strict:
//
//  1. summary.sig and summary are fetched, and the summary verified when the
//     remote requires it; refs are resolved from it (or refs/heads/).
//  2. For each commit, its detached metadata and the commit object are
//     fetched, checksummed and their signatures verified before any other
//     object is requested. Nothing is written before that.
//  3. The commit is marked partial and written; a static delta may then
//     bring in its objects (see StaticDeltas); finally dirtrees are walked and
//     every missing object fetched with bounded parallelism over keep-alive
//     connections. Each object is checksum-verified before it is staged,
//     and staged objects become visible in batches, so an interrupted pull
//     resumes where it stopped. Refs move and the partial mark goes only
//     when the whole commit is present.
//
// Transient failures (connection errors, 5xx, truncation, corruption) are
// retried with backoff; a stalled transfer is cut by a timeout; 4xx fail
// at once with an error naming the URL. After any failure the repository
// passes fsck: what was stored is verified, and incomplete commits are
// marked partial.
package pull

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/osupdate/os-update/internal/fsutil"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/remote"
	"github.com/osupdate/os-update/repo/sign"
	"github.com/osupdate/os-update/repo/summary"
)

// Source describes where to pull from and what to trust.
type Source struct {
	Name       string // remote name: refs go to refs/remotes/NAME/ (unless mirroring)
	URL        string // metadata base URL
	ContentURL string // objects and deltas; "" means URL
	// CommitVerifiers must each accept every pulled commit's detached
	// signatures. Empty means commits are not verified.
	CommitVerifiers []sign.Verifier
	// SummaryVerifiers must each accept the summary; non-empty makes
	// summary and summary.sig required.
	SummaryVerifiers []sign.Verifier
	TLS              TLSOptions
	// Notes are warnings about the source's configuration (an unverified
	// summary), logged when a pull starts.
	Notes []string
}

// FromRemote builds a Source from a configured remote, loading its keys.
func FromRemote(s *remote.Store, r *remote.Remote) (*Source, error) {
	cv, err := s.Verifiers(r, false)
	if err != nil {
		return nil, err
	}
	sv, err := s.Verifiers(r, true)
	if err != nil {
		return nil, err
	}
	src := &Source{
		Name: r.Name, URL: r.URL, ContentURL: r.ContentURL,
		CommitVerifiers: cv, SummaryVerifiers: sv,
		TLS: TLSOptions{Permissive: r.TLSPermissive, CAPath: r.TLSCAPath, ClientCert: r.TLSClientCert, ClientKey: r.TLSClientKey},
	}
	if note := s.SummaryUnverified(r); note != "" {
		src.Notes = append(src.Notes, note)
	}
	return src, nil
}

// Progress is a snapshot of a running pull.
type Progress struct {
	Stage        string // "summary", "commit", "delta", "objects", "done"
	ObjectsDone  int    // objects handled by the walk: present or fetched
	ObjectsTotal int    // objects discovered so far (grows during the walk)
	// ObjectsFetched counts objects downloaded one by one (commits,
	// delta fallbacks, the walk), not those a delta part carried.
	ObjectsFetched int
	// BytesDone is every byte received (summary, commits, superblock,
	// parts, objects). BytesTotal is what the pull expects to have
	// received when done: known once a delta's superblock is read (and
	// kept through the check walk that follows), 0 when unknown (an
	// object walk). At "done" it equals BytesDone.
	BytesDone  int64
	BytesTotal int64
	PartsDone  int // static delta parts applied
	PartsTotal int
	Rate       float64 // bytes per second since the start
	Elapsed    time.Duration
}

// RetryEvent is one retry of a request after a transient failure.
type RetryEvent struct {
	URL      string
	Attempt  int // 1 for the first retry
	Attempts int // retries allowed (Options.Retries)
	Err      error
	Backoff  time.Duration // wait before this retry
}

// DeltaRequest is what StaticDeltas gets to work with: the transaction
// to apply a delta into and the means to fetch it. On error the pull
// discards that transaction and falls back to the object walk.
type DeltaRequest struct {
	Repo   *repo.Repo
	Tx     *repo.Transaction
	To     object.Checksum
	Deltas []summary.Delta // deltas ending at To, as advertised
	// FromCandidates are local complete commits, best first (the ref's
	// current commit first).
	FromCandidates []object.Checksum
	// Fetch GETs a path relative to the content URL, at most max bytes.
	Fetch func(ctx context.Context, rel string, max int64) ([]byte, error)
	// FetchStream GETs a path relative to the content URL as a stream
	// from byte offset on (an HTTP range request when offset > 0; no
	// retry once reading started).
	FetchStream func(ctx context.Context, rel string, offset int64) (io.ReadCloser, error)
	// FetchObject fetches a content object into Tx (fallback objects).
	FetchObject func(ctx context.Context, c object.Checksum) error
	// VerifyCommit checks the delta's embedded commit against the
	// verified one.
	VerifyCommit func(commit []byte) error
	// Progress reports parts applied; Expect reports the bytes the delta
	// will transfer (already-fetched bytes count in Progress.BytesDone).
	Progress func(partsDone, partsTotal int)
	Expect   func(bytes int64)
}

// Options controls a pull.
type Options struct {
	// Refs to pull; "REF@CHECKSUM" pulls that commit for REF. Empty: the
	// refs given by Branches, else (with Mirror) every ref of the summary.
	Refs     []string
	Branches []string
	// Mirror writes refs/heads/REF instead of refs/remotes/NAME/REF and,
	// when every ref is pulled, copies summary and summary.sig.
	Mirror bool
	// CommitMetadataOnly fetches (and verifies) only commits and their
	// detached metadata; they stay partial and refs do not move.
	CommitMetadataOnly bool
	// Depth is how many parents to pull too (0: none, -1: all).
	Depth int
	// TimestampCheck refuses a commit older than the one the ref points
	// to locally (a replayed old, validly signed commit), before any
	// content is fetched.
	TimestampCheck bool
	// Workers is how many objects are fetched and written in parallel
	// (default 16); Connections bounds the HTTP connections to each host
	// (default 8, like libostree). Small objects are read whole and their
	// connection released before they are written, so writers waiting on
	// the disk do not hold connections.
	Workers     int
	Connections int
	// Retries per request for transient failures (default 5).
	Retries int
	// RetryBackoff is the first retry delay, doubled each time (default 250ms).
	RetryBackoff time.Duration
	// StallTimeout cuts a request that receives nothing for this long
	// (default 30s); ConnectTimeout bounds connecting (default 15s).
	StallTimeout   time.Duration
	ConnectTimeout time.Duration
	// BatchObjects is how many objects each worker stages before they
	// are made visible (default 2000); smaller means less to redo after a
	// crash, larger means fewer syncfs calls.
	BatchObjects int
	// DisableDeltas skips static deltas: only the object walk is used.
	DisableDeltas bool
	// Progress is called periodically and at the end.
	Progress         func(Progress)
	ProgressInterval time.Duration // default 250ms
	// Log receives human-readable notes (delta fallbacks, ...).
	Log func(format string, args ...any)
	// Retry, if set, is called once before each retry of a request.
	Retry func(RetryEvent)
}

// Result reports what a pull did.
type Result struct {
	Refs           map[string]object.Checksum // ref -> commit
	ObjectsFetched int                        // objects downloaded one by one (not from deltas)
	BytesFetched   int64
	Requests       int64
	DeltasUsed     int
	DeltaParts     int // static delta parts applied
	DeltaFailures  []error
}

type puller struct {
	r    *repo.Repo
	src  *Source
	opts Options
	f    *fetcher
	res  *Result

	objDone    atomic.Int64 // objects handled, present or fetched
	fetched    atomic.Int64 // objects downloaded one by one
	objTotal   atomic.Int64
	bytesTot   atomic.Int64
	partsDone  atomic.Int64
	partsTotal atomic.Int64
	stage      atomic.Value
	start      time.Time

	// spaceLeft is what the object walk may still write before the
	// min-free-space reserve (-1: not measured yet); see useSpace.
	spaceLeft atomic.Int64
}

// useSpace accounts for a content object about to be written by the
// object walk, which (without "ostree.sizes") cannot know the total in
// advance: like libostree, it fails as soon as the writes would eat into
// the repository's min-free-space reserve, re-measuring the file system
// before refusing.
func (p *puller) useSpace(size uint64) error {
	const block = 4096
	n := int64((size + block - 1) / block * block)
	if p.spaceLeft.Load() >= 0 && p.spaceLeft.Add(-n) >= 0 {
		return nil
	}
	res, err := p.r.MinFreeSpace()
	if err != nil {
		return err
	}
	sp, err := fsutil.StatSpace(p.r.Path())
	if err != nil {
		return err
	}
	if sp.Free < res.Bytes || sp.Free-res.Bytes < uint64(n) {
		return &fsutil.NoSpaceError{Op: "pull", Path: p.r.Path(), Need: uint64(n), Free: sp.Free, Reserve: res}
	}
	p.spaceLeft.Store(int64(sp.Free-res.Bytes) - n)
	return nil
}

func (p *puller) logf(format string, args ...any) {
	if p.opts.Log != nil {
		p.opts.Log(format, args...)
	}
}

func join(base, rel string) string { return strings.TrimSuffix(base, "/") + "/" + rel }

func (p *puller) metaURL(rel string) string { return join(p.src.URL, rel) }

func (p *puller) contentURL(rel string) string {
	if p.src.ContentURL != "" {
		return join(p.src.ContentURL, rel)
	}
	return join(p.src.URL, rel)
}

// fetchBytes GETs a URL into memory, at most max bytes.
func (p *puller) fetchBytes(ctx context.Context, url string, max int64) ([]byte, error) {
	var out []byte
	err := p.f.get(ctx, url, func(body io.Reader, length int64) error {
		b, err := readAll(body, length, max)
		out = b
		return err
	})
	return out, err
}

// setDefaults fills in the documented defaults of unset options.
func (opts *Options) setDefaults() {
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	if opts.Connections <= 0 {
		opts.Connections = 8
	}
	if opts.Retries <= 0 {
		opts.Retries = 5
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = 250 * time.Millisecond
	}
	if opts.StallTimeout <= 0 {
		opts.StallTimeout = 30 * time.Second
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 15 * time.Second
	}
	if opts.BatchObjects <= 0 {
		opts.BatchObjects = 2000
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 250 * time.Millisecond
	}
}

// Pull fetches refs from src into r.
func Pull(ctx context.Context, r *repo.Repo, src *Source, opts Options) (*Result, error) {
	opts.setDefaults()
	if src.Name == "" && !opts.Mirror {
		return nil, fmt.Errorf("pull: a remote name is required unless mirroring")
	}
	f, err := newFetcher(&opts, src.TLS)
	if err != nil {
		return nil, fmt.Errorf("pull from %s: %w", src.URL, err)
	}
	defer f.close()
	p := &puller{r: r, src: src, opts: opts, f: f, res: &Result{Refs: map[string]object.Checksum{}}, start: time.Now()}
	p.spaceLeft.Store(-1)
	p.stage.Store("summary")

	// The repository lock is held shared for the whole pull: its objects
	// become visible in several transactions before the refs move, and a
	// prune in between would delete them (refs are its only roots).
	unlock, err := r.LockShared()
	if err != nil {
		return nil, fmt.Errorf("pull from %s: %w", src.URL, err)
	}
	defer unlock()
	for _, n := range src.Notes {
		p.logf("%s", n)
	}
	stopProgress := p.startProgress()
	err = p.run(ctx)
	stopProgress()
	p.res.BytesFetched = f.bytes.Load()
	p.res.Requests = f.requests.Load()
	p.res.ObjectsFetched = int(p.fetched.Load())
	p.res.DeltaParts = int(p.partsDone.Load())
	if err != nil {
		return p.res, fmt.Errorf("pull from %s: %w", src.URL, err)
	}
	return p.res, nil
}

func (p *puller) snapshot() Progress {
	el := time.Since(p.start)
	b := p.f.bytes.Load()
	pr := Progress{
		Stage:          p.stage.Load().(string),
		ObjectsDone:    int(p.objDone.Load()),
		ObjectsTotal:   int(p.objTotal.Load()),
		ObjectsFetched: int(p.fetched.Load()),
		BytesDone:      b,
		BytesTotal:     p.bytesTot.Load(),
		PartsDone:      int(p.partsDone.Load()),
		PartsTotal:     int(p.partsTotal.Load()),
		Elapsed:        el,
	}
	if pr.Stage == "done" || (pr.BytesTotal > 0 && pr.BytesTotal < b) {
		// Done: what was fetched is all there was to fetch. Past the
		// estimate (retried parts): the estimate was short.
		pr.BytesTotal = b
	}
	if s := el.Seconds(); s > 0 {
		pr.Rate = float64(b) / s
	}
	return pr
}

func (p *puller) startProgress() func() {
	if p.opts.Progress == nil {
		return func() {}
	}
	p.opts.Progress(p.snapshot()) // the first stage, before any wait
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(p.opts.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.opts.Progress(p.snapshot())
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		p.opts.Progress(p.snapshot())
	}
}

func (p *puller) run(ctx context.Context) error {
	sum, sumBytes, sigBytes, err := p.fetchSummary(ctx)
	if err != nil {
		return err
	}
	if sum == nil {
		if err := p.checkRemoteConfig(ctx); err != nil {
			return err
		}
	}
	refs, err := p.resolveRefs(ctx, sum)
	if err != nil {
		return err
	}
	var deltas []summary.Delta
	if sum != nil {
		if deltas, err = sum.Deltas(); err != nil {
			return err
		}
	}
	for _, rc := range refs {
		if err := p.pullCommit(ctx, rc.ref, rc.commit, sum, deltas); err != nil {
			return fmt.Errorf("%s: %w", rc.ref, err)
		}
		p.res.Refs[rc.ref] = rc.commit
	}
	if p.opts.CommitMetadataOnly {
		p.stage.Store("done")
		return nil
	}
	for _, rc := range refs {
		var err error
		if p.opts.Mirror {
			err = p.r.SetRef("", rc.ref, rc.commit)
		} else {
			err = p.r.SetRef(p.src.Name, rc.ref, rc.commit)
		}
		if err != nil {
			return fmt.Errorf("set ref %s: %w", rc.ref, err)
		}
	}
	if p.opts.Mirror && len(p.opts.Refs) == 0 && len(p.opts.Branches) == 0 && sumBytes != nil {
		if err := summary.WriteFileAtomic(filepath.Join(p.r.Path(), "summary"), sumBytes); err != nil {
			return err
		}
		sigPath := filepath.Join(p.r.Path(), "summary.sig")
		if sigBytes != nil {
			err = summary.WriteFileAtomic(sigPath, sigBytes)
		} else if err = os.Remove(sigPath); errors.Is(err, os.ErrNotExist) {
			err = nil
		}
		if err != nil {
			return err
		}
	}
	p.stage.Store("done")
	return nil
}

// fetchSummary gets summary.sig then summary; either may be absent unless
// the summary must be verified.
func (p *puller) fetchSummary(ctx context.Context) (*summary.Summary, []byte, []byte, error) {
	sig, err := p.fetchBytes(ctx, p.metaURL("summary.sig"), summary.MaxSize)
	if err != nil && !errors.Is(err, errNotFound) {
		return nil, nil, nil, err
	}
	if sig != nil {
		if cached := p.cachedSummary(sig); cached != nil {
			if s, err := p.checkSummary(cached, sig); err == nil {
				return s, cached, sig, nil
			}
			// A cached copy that no longer verifies (keys changed, or
			// damaged) is simply downloaded again.
		}
	}
	data, err := p.fetchBytes(ctx, p.metaURL("summary"), summary.MaxSize)
	if errors.Is(err, errNotFound) {
		if len(p.src.SummaryVerifiers) > 0 {
			return nil, nil, nil, fmt.Errorf("summary verification is on, but the remote has no summary: %w", err)
		}
		return nil, nil, nil, nil
	}
	if err != nil {
		return nil, nil, nil, err
	}
	s, err := p.checkSummary(data, sig)
	if err != nil {
		return nil, nil, nil, err
	}
	if sig != nil {
		p.cacheSummary(data, sig)
	}
	return s, data, sig, nil
}

// checkSummary verifies (when required) and parses summary bytes.
func (p *puller) checkSummary(data, sig []byte) (*summary.Summary, error) {
	if len(p.src.SummaryVerifiers) > 0 {
		if sig == nil {
			return nil, fmt.Errorf("summary verification is on, but %s is missing: sign the summary on the server (ostree summary -u --gpg-sign=KEYID), "+
				"or set gpg-verify-summary=false (sign-verify-summary=false for ed25519) in the configuration of remote %q", p.metaURL("summary.sig"), p.src.Name)
		}
		m, err := object.UnmarshalMetadata(sig)
		if err != nil {
			return nil, fmt.Errorf("summary.sig: %w", err)
		}
		if _, err := sign.Verify(data, m, p.src.SummaryVerifiers...); err != nil {
			return nil, fmt.Errorf("summary signature: %w", err)
		}
	}
	s, err := summary.Parse(data)
	if err != nil {
		return nil, err
	}
	if mode := s.Mode(); mode != "" && mode != "archive" && mode != "archive-z2" {
		return nil, fmt.Errorf("remote repository mode is %q; only archive repositories can be pulled from", mode)
	}
	return s, nil
}

// summaryCache returns where a remote's summary and signature are
// cached: tmp/cache/summaries/NAME{,.sig}, libostree's location.
func (p *puller) summaryCache() (string, string) {
	if p.src.Name == "" {
		return "", ""
	}
	base := filepath.Join(p.r.Path(), "tmp", "cache", "summaries", p.src.Name)
	return base, base + ".sig"
}

// cachedSummary returns the cached summary when the server's signature is
// byte-identical to the cached one, so an unchanged summary is not
// downloaded again. The cached bytes are verified like fresh ones.
func (p *puller) cachedSummary(sig []byte) []byte {
	sumPath, sigPath := p.summaryCache()
	if sumPath == "" {
		return nil
	}
	old, err := os.ReadFile(sigPath)
	if err != nil || !bytes.Equal(old, sig) {
		return nil
	}
	data, err := os.ReadFile(sumPath)
	if err != nil || len(data) > summary.MaxSize {
		return nil
	}
	return data
}

// cacheSummary stores a verified summary and its signature; failures only
// cost a download next time.
func (p *puller) cacheSummary(data, sig []byte) {
	sumPath, sigPath := p.summaryCache()
	if sumPath == "" || data == nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(sumPath), 0o755); err != nil {
		return
	}
	// The signature goes last: it is what marks the pair as usable.
	os.Remove(sigPath)
	if summary.WriteFileAtomic(sumPath, data) == nil {
		summary.WriteFileAtomic(sigPath, sig)
	}
}

// checkRemoteConfig reads the remote's config when there is no summary, to
// refuse non-archive repositories early.
func (p *puller) checkRemoteConfig(ctx context.Context) error {
	b, err := p.fetchBytes(ctx, p.metaURL("config"), 1<<20)
	if errors.Is(err, errNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && strings.TrimSpace(k) == "mode" {
			v = strings.TrimSpace(v)
			if v != "archive" && v != "archive-z2" {
				return fmt.Errorf("remote repository mode is %q; only archive repositories can be pulled from", v)
			}
		}
	}
	return nil
}

type refCommit struct {
	ref    string
	commit object.Checksum
}

func (p *puller) resolveRefs(ctx context.Context, sum *summary.Summary) ([]refCommit, error) {
	refs := p.opts.Refs
	if len(refs) == 0 {
		refs = p.opts.Branches
	}
	if len(refs) == 0 {
		if !p.opts.Mirror || sum == nil {
			return nil, errors.New("no refs to pull (give refs, or configure branches=)")
		}
		for _, e := range sum.Refs {
			refs = append(refs, e.Name)
		}
	}
	var out []refCommit
	for _, ref := range refs {
		// REF@CHECKSUM pulls that commit for REF (a downgrade or a
		// specific version); the signature check applies all the same.
		if name, at, ok := strings.Cut(ref, "@"); ok {
			c, err := object.ParseChecksum(at)
			if err != nil {
				return nil, fmt.Errorf("ref %q: %w", ref, err)
			}
			if err := repo.ValidateRef(name); err != nil {
				return nil, err
			}
			out = append(out, refCommit{name, c})
			continue
		}
		if err := repo.ValidateRef(ref); err != nil {
			return nil, err
		}
		if sum != nil {
			e, ok := sum.Lookup(ref)
			if !ok {
				return nil, fmt.Errorf("ref %q is not in the remote's summary", ref)
			}
			out = append(out, refCommit{ref, e.Commit})
			continue
		}
		b, err := p.fetchBytes(ctx, p.metaURL("refs/heads/"+ref), 1024)
		if err != nil {
			return nil, fmt.Errorf("resolve ref %s: %w", ref, err)
		}
		c, err := object.ParseChecksum(strings.TrimRight(string(b), " \t\r\n"))
		if err != nil {
			return nil, fmt.Errorf("resolve ref %s: %w", ref, err)
		}
		out = append(out, refCommit{ref, c})
	}
	return out, nil
}

// fetchCommit fetches and verifies a commit and its detached metadata,
// writing nothing. sizeHint, if non-zero, is the summary's commit size.
func (p *puller) fetchCommit(ctx context.Context, c object.Checksum, sizeHint uint64) ([]byte, object.Metadata, bool, error) {
	metaRel := "objects/" + object.LoosePath(c, object.TypeCommitMeta, true)
	var detached object.Metadata
	hasDetached := false
	mb, err := p.fetchBytes(ctx, p.metaURL(metaRel), repo.MaxMetadataSize)
	switch {
	case err == nil:
		if detached, err = object.UnmarshalMetadata(mb); err != nil {
			return nil, nil, false, fmt.Errorf("%s: %w", p.metaURL(metaRel), err)
		}
		hasDetached = true
	case errors.Is(err, errNotFound):
	default:
		return nil, nil, false, err
	}
	max := int64(repo.MaxMetadataSize)
	if sizeHint > 0 && int64(sizeHint) < max {
		max = int64(sizeHint)
	}
	commitURL := p.contentURL("objects/" + object.LoosePath(c, object.TypeCommit, true))
	var data []byte
	err = nil
	// A commit we have already is read locally (and re-checked); its
	// detached metadata was fetched anyway, for new signatures.
	if ok, _ := p.r.HasObject(c, object.TypeCommit); ok {
		if b, err := p.r.ReadMeta(object.TypeCommit, c); err == nil && object.SumMeta(b) == c {
			data = b
		}
	}
	if data == nil {
		err = p.f.get(ctx, commitURL, func(body io.Reader, length int64) error {
			b, err := readAll(body, length, max)
			if err != nil {
				return err
			}
			if got := object.SumMeta(b); got != c {
				return fmt.Errorf("commit %s: content hashes to %s: checksum mismatch", c, got)
			}
			if _, err := object.UnmarshalCommit(b); err != nil {
				return fmt.Errorf("commit %s: %w", c, err)
			}
			data = b
			return nil
		})
		if err == nil {
			p.fetched.Add(1)
		}
	}
	if err != nil {
		return nil, nil, false, err
	}
	if len(p.src.CommitVerifiers) > 0 {
		if _, err := sign.Verify(data, detached, p.src.CommitVerifiers...); err != nil {
			return nil, nil, false, fmt.Errorf("commit %s signature: %w", c, err)
		}
	}
	return data, detached, hasDetached, nil
}

func checkBinding(data []byte, ref string) error {
	cm, err := object.UnmarshalCommit(data)
	if err != nil {
		return err
	}
	v, ok := cm.Metadata.Get("ostree.ref-binding")
	if !ok {
		return nil
	}
	list, _ := v.Value.([]gvariant.Value)
	for _, e := range list {
		if s, _ := e.(string); s == ref {
			return nil
		}
	}
	return fmt.Errorf("commit is bound to refs %s, not %s", gvariant.Format(v.Value, v.Type), ref)
}

// pullCommit brings one ref's commit (and parents, by depth) in.
func (p *puller) pullCommit(ctx context.Context, ref string, c object.Checksum, sum *summary.Summary, deltas []summary.Delta) error {
	var sizeHint uint64
	if sum != nil {
		if e, ok := sum.Lookup(ref); ok && e.Commit == c {
			sizeHint = e.CommitSize
		}
	}
	depth := p.opts.Depth
	first := true
	for {
		p.stage.Store("commit")
		data, detached, hasDetached, err := p.fetchCommit(ctx, c, sizeHint)
		if !first && errors.Is(err, errNotFound) {
			return nil // history is often shallow on servers
		}
		if err != nil {
			return err
		}
		if first {
			if err := checkBinding(data, ref); err != nil {
				return fmt.Errorf("commit %s: %w", c, err)
			}
			if p.opts.TimestampCheck {
				if err := p.checkTimestamp(ref, c, data); err != nil {
					return err
				}
			}
		}
		if !p.opts.CommitMetadataOnly {
			if err := p.checkSpace(c, data); err != nil {
				return err
			}
		}
		if err := p.storeCommit(c, data, detached, hasDetached); err != nil {
			return err
		}
		if !p.opts.CommitMetadataOnly {
			var restore func(tx *repo.Transaction) error
			if hasDetached {
				restore = func(tx *repo.Transaction) error { return tx.WriteCommitMeta(c, detached) }
			}
			if err := p.pullTree(ctx, ref, c, first, deltas, restore); err != nil {
				return err
			}
		}
		cm, err := object.UnmarshalCommit(data)
		if err != nil {
			return err
		}
		if depth == 0 || !cm.HasParent() {
			return nil
		}
		if depth > 0 {
			depth--
		}
		c, sizeHint, first = cm.Parent, 0, false
	}
}

// checkSpace refuses a commit whose content does not fit, before anything
// of it is written: the repository must keep its min-free-space reserve
// and, where the commit records "ostree.sizes", room for every object not
// yet present. Without sizes, a delta's superblock is checked later (also
// before anything but the commit object is written).
func (p *puller) checkSpace(c object.Checksum, data []byte) error {
	if ok, _ := p.r.HasObject(c, object.TypeCommit); ok && !p.r.IsPartial(c) {
		return nil
	}
	cm, err := object.UnmarshalCommit(data)
	if err != nil {
		return fmt.Errorf("commit %s: %w", c, err)
	}
	var need uint64
	sizes, ok, err := repo.CommitSizes(cm)
	if err != nil {
		return fmt.Errorf("commit %s: %w", c, err)
	}
	if ok {
		need = p.r.BytesToStore(sizes)
	}
	return p.r.CheckSpace("pull", need)
}

// checkTimestamp refuses to go back in time relative to the local ref.
func (p *puller) checkTimestamp(ref string, c object.Checksum, data []byte) error {
	remoteName := p.src.Name
	if p.opts.Mirror {
		remoteName = ""
	}
	cur, err := p.r.ReadRef(remoteName, ref)
	if err != nil || cur == c {
		return nil // no local ref yet
	}
	old, err := p.r.LoadCommit(cur)
	if err != nil {
		return nil // the current commit is gone; nothing to compare with
	}
	cm, err := object.UnmarshalCommit(data)
	if err != nil {
		return err
	}
	if cm.Timestamp < old.Timestamp {
		return fmt.Errorf("commit %s (%s) is older than the current %s (%s): refusing a downgrade",
			c, time.Unix(int64(cm.Timestamp), 0).UTC().Format(time.RFC3339), cur, time.Unix(int64(old.Timestamp), 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// storeCommit marks the commit partial (unless complete already) and
// makes it and its detached metadata visible.
func (p *puller) storeCommit(c object.Checksum, data []byte, detached object.Metadata, hasDetached bool) error {
	present, err := p.r.HasObject(c, object.TypeCommit)
	if err != nil {
		return err
	}
	if !present {
		// Marked before the commit becomes visible: a visible commit
		// without its tree is always known to be partial.
		if err := p.r.MarkPartial(c); err != nil {
			return fmt.Errorf("commit %s: %w", c, err)
		}
	}
	return p.r.Update(context.Background(), func(tx *repo.Transaction) error {
		if _, err := tx.WriteMeta(object.TypeCommit, data, &c); err != nil {
			return err
		}
		if hasDetached {
			return tx.WriteCommitMeta(c, detached)
		}
		return nil
	})
}

// localCandidates lists complete local commits to start a delta from: the
// ref's current commits first.
func (p *puller) localCandidates(ref string) []object.Checksum {
	var out []object.Checksum
	seen := map[object.Checksum]bool{}
	add := func(c object.Checksum) {
		if c.IsZero() || seen[c] {
			return
		}
		if ok, _ := p.r.HasObject(c, object.TypeCommit); ok && !p.r.IsPartial(c) {
			seen[c] = true
			out = append(out, c)
		}
	}
	if p.src.Name != "" {
		if c, err := p.r.ReadRef(p.src.Name, ref); err == nil {
			add(c)
		}
	}
	if c, err := p.r.ReadRef("", ref); err == nil {
		add(c)
	}
	return out
}

// pullTree makes sure every object of commit c is present: a delta
// first when possible, then the object walk.
func (p *puller) pullTree(ctx context.Context, ref string, c object.Checksum, head bool, deltas []summary.Delta, restoreMeta func(*repo.Transaction) error) error {
	if ok, _ := p.r.HasObject(c, object.TypeCommit); ok && !p.r.IsPartial(c) {
		return nil
	}
	deltasBefore := p.res.DeltasUsed
	if head && !p.opts.DisableDeltas {
		var mine []summary.Delta
		for _, d := range deltas {
			if d.To == c {
				mine = append(mine, d)
			}
		}
		if err := p.tryDelta(ctx, ref, c, mine, restoreMeta); err != nil {
			if ctx.Err() != nil {
				// Cancelled, not failed: the fetched parts stay cached
				// for the next pull; walking objects now would be wrong.
				return ctx.Err()
			}
			if errors.As(err, new(*fsutil.NoSpaceError)) {
				return err // the objects would not fit either
			}
			p.res.DeltaFailures = append(p.res.DeltaFailures, err)
			p.logf("static delta for %s failed, fetching objects instead: %v", c, err)
		}
	}
	if p.res.DeltasUsed == deltasBefore {
		// Without a delta nothing says how many bytes the walk will
		// fetch. After a delta the walk only checks that every object
		// is present, and the delta's total stays true.
		p.bytesTot.Store(0)
	}
	p.stage.Store("objects")
	if err := p.walk(ctx, c); err != nil {
		return err
	}
	return p.r.ClearPartial(c)
}

func (p *puller) tryDelta(ctx context.Context, ref string, to object.Checksum, deltas []summary.Delta, restoreMeta func(*repo.Transaction) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.stage.Store("delta")
	applied := false
	err := p.r.Update(ctx, func(tx *repo.Transaction) error {
		var err error
		applied, err = StaticDeltas(ctx, p.deltaRequest(ctx, tx, ref, to, deltas))
		if err == nil && applied && restoreMeta != nil {
			// The delta carries detached metadata of its own; keep the
			// verified copy fetched with the commit.
			err = restoreMeta(tx)
		}
		if err == nil && !applied {
			return errNoDelta
		}
		return err
	})
	if errors.Is(err, errNoDelta) {
		return nil
	}
	if err != nil {
		return err
	}
	p.res.DeltasUsed++
	return nil
}

// errNoDelta discards the transaction of a delta attempt that found no
// usable delta.
var errNoDelta = errors.New("no usable static delta")

// deltaRequest is what StaticDeltas needs to apply a delta into tx.
func (p *puller) deltaRequest(ctx context.Context, tx *repo.Transaction, ref string, to object.Checksum, deltas []summary.Delta) *DeltaRequest {
	return &DeltaRequest{
		Repo: p.r, Tx: tx, To: to, Deltas: deltas,
		FromCandidates: p.localCandidates(ref),
		Fetch: func(ctx context.Context, rel string, max int64) ([]byte, error) {
			return p.fetchBytes(ctx, p.contentURL(rel), max)
		},
		FetchStream: func(ctx context.Context, rel string, offset int64) (io.ReadCloser, error) {
			return p.f.openAt(ctx, p.contentURL(rel), offset)
		},
		FetchObject: func(ctx context.Context, c object.Checksum) error {
			return p.fetchContent(ctx, tx, c)
		},
		VerifyCommit: func(commit []byte) error {
			if got := object.SumMeta(commit); got != to {
				return fmt.Errorf("delta carries commit %s, want %s", got, to)
			}
			return nil
		},
		Progress: func(done, total int) { p.partsDone.Store(int64(done)); p.partsTotal.Store(int64(total)) },
		Expect:   func(n int64) { p.bytesTot.Store(p.f.bytes.Load() + n) },
	}
}

// openStream GETs url and returns the body (retrying only until the
// response starts).
func (p *puller) openStream(ctx context.Context, url string) (io.ReadCloser, error) {
	return p.f.openAt(ctx, url, 0)
}
