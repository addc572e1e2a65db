package pull

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/delta"
)

// partCache keeps the static-delta parts a pull has fetched and verified,
// so that a pull cancelled, killed or cut off in the middle of a delta
// fetches only the parts it lacks the next time. Delta execution stays one
// repository transaction (nothing half-applied becomes visible); what
// survives is the downloaded parts, as libostree keeps fetched parts in
// its cache directory.
//
// Layout: <repo>/tmp/cache/deltaparts/<from>-<to>/<index>-<sha256 of the
// part>. A part is streamed into the apply as it arrives and copied into
// <name>.partial on the way; once the apply has checked its size and
// SHA-256 (hashing it as it decodes it: one pass, no re-read), the file
// is renamed to its final name. Nothing is fsynced: the cache only saves
// downloads, and a cached part is hashed again before it is used, so a
// part damaged by a crash costs a download, never a bad object. A
// .partial file keeps the bytes of a transfer that broke off; the next
// try asks for the rest with an HTTP range request. The directory goes
// when the delta has been applied; directories of other deltas go when a
// new delta starts, and `cleanup --cache` removes them all.
type partCache struct {
	dir string
}

func partCacheRoot(r *repo.Repo) string {
	return filepath.Join(r.Path(), "tmp", "cache", "deltaparts")
}

func newPartCache(r *repo.Repo, n delta.Name) *partCache {
	from := "empty"
	if !n.From.IsZero() {
		from = n.From.String()
	}
	return &partCache{dir: filepath.Join(partCacheRoot(r), from+"-"+n.To.String())}
}

// dropOthers removes the cached parts of every other delta: a pull only
// ever resumes the delta it is applying now.
func (c *partCache) dropOthers() {
	root := filepath.Dir(c.dir)
	des, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, de := range des {
		if p := filepath.Join(root, de.Name()); p != c.dir {
			os.RemoveAll(p)
		}
	}
}

// remove drops this delta's parts once it has been applied.
func (c *partCache) remove() { os.RemoveAll(c.dir) }

func (c *partCache) path(i int, ph delta.PartHeader) string {
	return filepath.Join(c.dir, fmt.Sprintf("%d-%x", i, ph.Checksum))
}

// has reports whether part i is cached (with the size it must have).
func (c *partCache) has(i int, ph delta.PartHeader) bool {
	fi, err := os.Stat(c.path(i, ph))
	return err == nil && fi.Mode().IsRegular() && uint64(fi.Size()) == ph.Size
}

// missing is how many bytes of part i are still to be fetched.
func (c *partCache) missing(i int, ph delta.PartHeader) uint64 {
	if c.has(i, ph) {
		return 0
	}
	if fi, err := os.Stat(c.path(i, ph) + ".partial"); err == nil && uint64(fi.Size()) <= ph.Size {
		return ph.Size - uint64(fi.Size())
	}
	return ph.Size
}

// partRetries is how often a part whose transfer broke off is requested
// again (from where it broke off) before the delta is given up.
const partRetries = 3

// fetchFunc GETs a part from byte offset on.
type fetchFunc func(ctx context.Context, offset int64) (io.ReadCloser, error)

// open returns part i: from the cache when it is there and verifies,
// else streamed from the server (see streamPart), or, when an earlier
// transfer left the start of it, completed from where it stopped
// (verified, and started again from nothing once if it does not verify).
// A cancelled context ends it at once.
func (c *partCache) open(ctx context.Context, i int, ph delta.PartHeader, fetch fetchFunc) (io.ReadCloser, error) {
	if c.has(i, ph) {
		if f := c.openVerified(i, ph); f != nil {
			return f, nil
		}
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("delta part cache: %w", err)
	}
	if fi, err := os.Stat(c.path(i, ph) + ".partial"); err != nil || fi.Size() == 0 {
		return c.stream(ctx, i, ph, fetch)
	}
	var lastErr error
	for attempt := 0; attempt < partRetries; attempt++ {
		f, err := c.download(ctx, i, ph, fetch)
		if err == nil {
			return f, nil
		}
		lastErr = err
		if ctx.Err() != nil || errors.Is(err, delta.ErrMalformed) || isPermanent(err) {
			break
		}
	}
	return nil, lastErr
}

// openVerified opens cached part i if it still hashes to its checksum
// (the cache is written without fsync); a damaged one is removed.
func (c *partCache) openVerified(i int, ph delta.PartHeader) *os.File {
	f, err := os.Open(c.path(i, ph))
	if err != nil {
		return nil
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, int64(ph.Size)+1))
	if err == nil && uint64(n) == ph.Size && bytes.Equal(h.Sum(nil), ph.Checksum[:]) {
		if _, err := f.Seek(0, io.SeekStart); err == nil {
			return f
		}
	}
	f.Close()
	os.Remove(c.path(i, ph))
	return nil
}

// stream fetches part i for the apply to read as it arrives, copying it
// into the cache on the way (see streamPart).
func (c *partCache) stream(ctx context.Context, i int, ph delta.PartHeader, fetch fetchFunc) (io.ReadCloser, error) {
	body, err := fetch(ctx, 0)
	if err != nil {
		return nil, err
	}
	s := &streamPart{ctx: ctx, c: c, i: i, ph: ph, fetch: fetch, body: body}
	if f, err := os.OpenFile(c.path(i, ph)+".partial", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644); err == nil {
		s.f = f
	}
	return s, nil
}

// streamPart is a part read from the server by the apply. A transfer
// that breaks off is resumed where it stopped (up to partRetries times)
// without the reader noticing. The bytes go to the .partial file as they
// pass; Verified (called by the apply once size and checksum matched)
// publishes it in the cache. Closed unverified, the file stays for a
// resume if the transfer broke off or was cancelled, and goes if all of
// it arrived (then its bytes are what is wrong) or the server refused it.
type streamPart struct {
	ctx      context.Context
	c        *partCache
	i        int
	ph       delta.PartHeader
	fetch    fetchFunc
	body     io.ReadCloser
	f        *os.File // the .partial file; nil if it could not be written
	n        int64    // bytes passed on
	pending  error    // a read error that came with data
	retries  int
	refused  bool // the server refused the part (not a broken transfer)
	verified bool
}

func (s *streamPart) Read(p []byte) (int, error) {
	for {
		var n int
		var err error
		if s.pending != nil {
			err, s.pending = s.pending, nil
		} else {
			n, err = s.body.Read(p)
		}
		if n > 0 {
			s.n += int64(n)
			if s.f != nil {
				if _, werr := s.f.Write(p[:n]); werr != nil {
					// Caching is an optimisation: stop it, go on.
					s.dropFile()
				}
			}
			s.pending = err // handled at the next call
			return n, nil
		}
		if err == nil {
			continue
		}
		if err == io.EOF && s.n >= int64(s.ph.Size) {
			return 0, io.EOF
		}
		if cerr := s.ctx.Err(); cerr != nil {
			return 0, cerr
		}
		if err == io.EOF {
			err = fmt.Errorf("got %d of %d bytes", s.n, s.ph.Size)
		}
		if s.retries+1 >= partRetries {
			return 0, transient(fmt.Errorf("part %d: %w", s.i, err))
		}
		s.retries++
		s.body.Close()
		body, ferr := s.fetch(s.ctx, s.n)
		if ferr != nil {
			s.body = io.NopCloser(bytes.NewReader(nil))
			if isPermanent(ferr) || errors.Is(ferr, errNotFound) {
				s.refused = true
			}
			return 0, ferr
		}
		s.body = body
	}
}

func (s *streamPart) dropFile() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
		s.f = nil
	}
}

// Verified publishes the part in the cache.
func (s *streamPart) Verified() {
	s.verified = true
	if s.f == nil {
		return
	}
	err := s.f.Close()
	if err == nil {
		err = os.Rename(s.f.Name(), s.c.path(s.i, s.ph))
	}
	if err != nil {
		os.Remove(s.f.Name())
	}
	s.f = nil
}

func (s *streamPart) Close() error {
	s.body.Close()
	if s.f != nil && (s.refused || s.n >= int64(s.ph.Size)) {
		s.dropFile()
	}
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	return nil
}

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// download completes part i's .partial file (from its current length on),
// checks size and checksum, and publishes it under its final name. A
// resumed file that does not verify is started again from nothing once,
// since the bytes kept may be what is wrong.
func (c *partCache) download(ctx context.Context, i int, ph delta.PartHeader, fetch fetchFunc) (io.ReadCloser, error) {
	partial := c.path(i, ph) + ".partial"
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("delta part cache: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
		}
	}()
	h := sha256.New()
	have, err := io.Copy(h, io.LimitReader(f, int64(ph.Size)+1))
	if err != nil {
		return nil, fmt.Errorf("delta part cache: %w", err)
	}
	if uint64(have) > ph.Size {
		if have, err = restart(f, h); err != nil {
			return nil, err
		}
	}
	fail := func(err error) (io.ReadCloser, error) {
		if errors.Is(err, delta.ErrMalformed) || isPermanent(err) || errors.Is(err, errNotFound) {
			// Not a transfer that broke off: keep nothing of it.
			os.Remove(partial)
		}
		return nil, err
	}
	resumedFrom := have
	if uint64(have) < ph.Size {
		if _, err := c.fetchInto(ctx, f, h, i, ph, have, fetch); err != nil {
			return fail(err)
		}
	}
	if !bytes.Equal(h.Sum(nil), ph.Checksum[:]) {
		if resumedFrom == 0 {
			os.Remove(partial)
			return nil, fmt.Errorf("part %d: %w: checksum mismatch: the part hashes to %x, superblock says %x", i, delta.ErrMalformed, h.Sum(nil), ph.Checksum)
		}
		// The bytes kept from before may be what is wrong: once more
		// from nothing (then a mismatch is the server's).
		if _, err := restart(f, h); err != nil {
			return nil, err
		}
		if _, err := c.fetchInto(ctx, f, h, i, ph, 0, fetch); err != nil {
			return fail(err)
		}
		if !bytes.Equal(h.Sum(nil), ph.Checksum[:]) {
			os.Remove(partial)
			return nil, fmt.Errorf("part %d: %w: checksum mismatch: the part hashes to %x, superblock says %x", i, delta.ErrMalformed, h.Sum(nil), ph.Checksum)
		}
	}
	if err := os.Rename(partial, c.path(i, ph)); err != nil {
		// Not cached (the directory went meanwhile); still usable now.
		os.Remove(partial)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("delta part cache: %w", err)
	}
	keep = true
	return f, nil
}

// restart empties a partial file and its hash.
func restart(f *os.File, h hash.Hash) (int64, error) {
	h.Reset()
	if err := f.Truncate(0); err != nil {
		return 0, fmt.Errorf("delta part cache: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("delta part cache: %w", err)
	}
	return 0, nil
}

// fetchInto appends part i from byte offset on to f (positioned at
// offset) and h, and returns how many bytes it added. A transfer that
// ends early is a transient error; one that goes past the declared size
// is malformed.
func (c *partCache) fetchInto(ctx context.Context, f *os.File, h hash.Hash, i int, ph delta.PartHeader, offset int64, fetch fetchFunc) (int64, error) {
	rc, err := fetch(ctx, offset)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	want := int64(ph.Size) - offset
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rc, want+1))
	if n > want {
		return n, fmt.Errorf("part %d: %w: more than the %d bytes the superblock declares", i, delta.ErrMalformed, ph.Size)
	}
	if err != nil {
		return n, transient(fmt.Errorf("part %d: %w", i, err))
	}
	if n < want {
		return n, transient(fmt.Errorf("part %d: got %d of %d bytes", i, offset+n, ph.Size))
	}
	return n, nil
}
