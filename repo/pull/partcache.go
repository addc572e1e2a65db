package pull

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
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
// part>. A part is only ever stored under its verified checksum (written
// to a temporary file, hashed, then renamed), and the delta applier
// verifies it again when reading, so a damaged cache costs a download,
// never a bad object. The directory goes when the delta has been applied;
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

// partRetries is how often a part whose transfer broke off is requested
// again before the delta is given up.
const partRetries = 3

// open returns part i: from the cache when it is there, else fetched in
// full, verified and stored first. A transfer that breaks off is retried;
// a cancelled context ends it at once.
func (c *partCache) open(ctx context.Context, i int, ph delta.PartHeader, fetch func(context.Context) (io.ReadCloser, error)) (io.ReadCloser, error) {
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

// download fetches part i into a temporary file of the cache, checks its
// size and checksum, and publishes it under its final name.
func (c *partCache) download(ctx context.Context, i int, ph delta.PartHeader, fetch func(context.Context) (io.ReadCloser, error)) (*os.File, error) {
	rc, err := fetch(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(c.dir, ".part-*")
	if err != nil {
		return nil, fmt.Errorf("delta part cache: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(rc, int64(ph.Size)+1))
	if err != nil {
		return nil, err
	}
	if uint64(n) != ph.Size {
		if uint64(n) < ph.Size {
			return nil, transient(fmt.Errorf("part %d: got %d of %d bytes", i, n, ph.Size))
		}
		return nil, fmt.Errorf("part %d: %w: more than the %d bytes the superblock declares", i, delta.ErrMalformed, ph.Size)
	}
	if sum := h.Sum(nil); string(sum) != string(ph.Checksum[:]) {
		return nil, fmt.Errorf("part %d: %w: checksum mismatch: the part hashes to %x, superblock says %x", i, delta.ErrMalformed, sum, ph.Checksum)
	}
	// Durable before it is published: after a crash a cached part is
	// whole.
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("delta part cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), c.path(i, ph)); err != nil {
		// Not cached (the directory went meanwhile); still usable now.
		os.Remove(tmp.Name())
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("delta part cache: %w", err)
	}
	keep = true
	return tmp, nil
}
