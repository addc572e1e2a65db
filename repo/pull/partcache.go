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
// part>. A part is only ever stored under its verified checksum (fetched
// into <name>.partial, hashed, then renamed), and the delta applier
// verifies it again when reading, so a damaged cache costs a download,
// never a bad object. A .partial file keeps the bytes of a transfer that
// broke off; the next try asks for the rest with an HTTP range request. The directory goes when the delta has been applied;
// directories of other deltas go when a new delta starts, and
// `cleanup --cache` removes them all.
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

// open returns part i: from the cache when it is there, else fetched,
// verified and stored first. A transfer that breaks off is resumed where
// it stopped (the bytes so far stay in INDEX-SHA256.partial, across pulls
// too); a cancelled context ends it at once.
func (c *partCache) open(ctx context.Context, i int, ph delta.PartHeader, fetch fetchFunc) (io.ReadCloser, error) {
	if c.has(i, ph) {
		if f, err := os.Open(c.path(i, ph)); err == nil {
			return f, nil
		}
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("delta part cache: %w", err)
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
	// Durable before it is published: after a crash a cached part is
	// whole.
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("delta part cache: %w", err)
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
