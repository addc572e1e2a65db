package repo

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/osupdate/os-update/repo/object"
	"golang.org/x/sys/unix"
)

// CompressionLevel is the deflate level of .filez objects; 6 is zlib's
// default, which libostree uses.
const CompressionLevel = 6

func newBufReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 64<<10) }

// Transaction stages objects in a private directory under tmp/ and makes
// them visible atomically on Commit. It is safe for concurrent use.
type Transaction struct {
	r      *Repo
	dir    string
	dirFD  int
	lockFD int
	seq    atomic.Uint64

	filesRead, filesReused, objectsWritten atomic.Int64

	mu     sync.Mutex
	staged map[object.Name]string // object -> file name in the staging dir
	refs   []refUpdate            // written by Commit, under the lock
	done   bool
}

// refUpdate is a ref move queued with Transaction.SetRef.
type refUpdate struct {
	remote, ref string
	commit      object.Checksum
}

// TxStats counts a transaction's work.
type TxStats struct {
	FilesRead      int64 // input files hashed by WriteDir
	FilesReused    int64 // input files whose checksum came from the inode index
	ObjectsWritten int64 // new objects staged
}

// Stats returns counters of the work done so far.
func (tx *Transaction) Stats() TxStats {
	return TxStats{tx.filesRead.Load(), tx.filesReused.Load(), tx.objectsWritten.Load()}
}

// LockShared takes the repository lock shared and returns its release.
// Prune takes the lock exclusively, so while it is held nothing is
// deleted: hold it across every step that makes objects visible and then
// points refs at them in separate transactions (a pull, a commit that is
// signed before its ref moves), or across resolving a commit and writing a
// ref to it. Shared holders never block each other; a holder must not call
// Prune (it would wait for itself).
func (r *Repo) LockShared() (func(), error) {
	fd, err := r.lockRepo(false)
	if err != nil {
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { unix.Close(fd) }) }, nil
}

// lockRepo takes the repository-wide lock: shared for writers, exclusive
// for prune.
func (r *Repo) lockRepo(exclusive bool) (int, error) {
	fd, err := unix.Open(filepath.Join(r.path, ".lock"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return -1, fmt.Errorf("lock %s: %w", r.path, err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if err := unix.Flock(fd, how); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("lock %s: %w", r.path, err)
	}
	return fd, nil
}

// Begin starts a transaction. Staging directories left behind by dead
// processes are removed first.
func (r *Repo) Begin() (*Transaction, error) {
	lockFD, err := r.lockRepo(false)
	if err != nil {
		return nil, err
	}
	r.cleanStaleStaging()
	var rnd [8]byte
	rand.Read(rnd[:])
	// The directory is made and locked under a name cleanStaleStaging
	// ignores, and only then renamed: a concurrent Begin must never see
	// it unlocked and remove it as stale.
	init := filepath.Join(r.path, "tmp", "init-"+hex.EncodeToString(rnd[:]))
	dir := filepath.Join(r.path, "tmp", "staging-"+hex.EncodeToString(rnd[:]))
	if err := os.Mkdir(init, 0o755); err != nil {
		unix.Close(lockFD)
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	fd, err := unix.Open(init, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		// The staging directory's own lock says "owner alive".
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	}
	if err == nil {
		err = os.Rename(init, dir)
	}
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		unix.Close(lockFD)
		os.RemoveAll(init)
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	return &Transaction{r: r, dir: dir, dirFD: fd, lockFD: lockFD, staged: map[object.Name]string{}}, nil
}

// Update runs fn in a new transaction and commits it when fn returns nil
// and ctx is not cancelled; otherwise, or if fn panics, everything fn
// staged is discarded and nothing becomes visible. It is the one way a
// transaction is begun and committed in one place (bbolt's managed
// transactions): fn must not call Commit or Abort itself.
func (r *Repo) Update(ctx context.Context, fn func(*Transaction) error) error {
	tx, err := r.Begin()
	if err != nil {
		return err
	}
	defer tx.Abort() // a no-op once committed
	if err := fn(tx); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// cleanStaleStaging removes staging directories nobody holds a lock on.
func (r *Repo) cleanStaleStaging() {
	tmp := filepath.Join(r.path, "tmp")
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range ents {
		switch {
		case strings.HasPrefix(e.Name(), "staging-"):
		case strings.HasPrefix(e.Name(), "init-"):
			// Only a process that died between mkdir and rename leaves
			// one; give a live one far more than that moment.
			if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) < 10*time.Minute {
				continue
			}
		default:
			continue
		}
		p := filepath.Join(tmp, e.Name())
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.RemoveAll(p)
		}
		unix.Close(fd)
	}
}

func (tx *Transaction) tmpName() string {
	return "o" + strconv.FormatUint(tx.seq.Add(1), 10)
}

// Repo returns the transaction's repository.
func (tx *Transaction) Repo() *Repo { return tx.r }

// Has reports whether an object exists in the store or is staged.
func (tx *Transaction) Has(n object.Name) (bool, error) {
	tx.mu.Lock()
	_, ok := tx.staged[n]
	tx.mu.Unlock()
	if ok {
		return true, nil
	}
	return tx.r.HasObject(n.Checksum, n.Type)
}

// stage records a finished temporary file, or removes it if the object is
// already present.
func (tx *Transaction) stage(n object.Name, tmp string) error {
	present, err := tx.Has(n)
	if err != nil {
		return err
	}
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.done {
		unix.Unlinkat(tx.dirFD, tmp, 0)
		return fmt.Errorf("transaction already finished")
	}
	if _, ok := tx.staged[n]; ok || present {
		unix.Unlinkat(tx.dirFD, tmp, 0)
		return nil
	}
	tx.staged[n] = tmp
	tx.objectsWritten.Add(1)
	return nil
}

// WriteMeta validates and stores a metadata object, returning its checksum.
// If expected is non-nil, the data must hash to it.
func (tx *Transaction) WriteMeta(t object.Type, data []byte, expected *object.Checksum) (object.Checksum, error) {
	if t == object.TypeCommitMeta {
		return object.Checksum{}, fmt.Errorf("detached metadata is written with WriteCommitMeta")
	}
	c := object.SumMeta(data)
	if expected != nil && c != *expected {
		return c, fmt.Errorf("%s.%s: content hashes to %s: checksum mismatch", expected, t, c)
	}
	if err := object.ValidateMeta(t, data); err != nil {
		return c, fmt.Errorf("%s.%s: %w", c, t, err)
	}
	n := object.Name{Checksum: c, Type: t}
	if ok, err := tx.Has(n); err != nil || ok {
		return c, err
	}
	tmp := tx.tmpName()
	if err := writeAt(tx.dirFD, tmp, data, 0o644); err != nil {
		return c, fmt.Errorf("write %s: %w", n, err)
	}
	return c, tx.stage(n, tmp)
}

// WriteCommitMeta stores detached metadata for a commit, replacing any.
func (tx *Transaction) WriteCommitMeta(commit object.Checksum, m object.Metadata) error {
	data, err := object.MarshalMetadata(m)
	if err != nil {
		return fmt.Errorf("commitmeta %s: %w", commit, err)
	}
	tmp := tx.tmpName()
	if err := writeAt(tx.dirFD, tmp, data, 0o644); err != nil {
		return fmt.Errorf("commitmeta %s: %w", commit, err)
	}
	// Detached metadata is not content-addressed: the newest write wins.
	n := object.Name{Checksum: commit, Type: object.TypeCommitMeta}
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if old, ok := tx.staged[n]; ok {
		unix.Unlinkat(tx.dirFD, old, 0)
	}
	tx.staged[n] = tmp
	return nil
}

func writeAt(dirFD int, name string, data []byte, perm uint32) error {
	fd, err := unix.Openat(dirFD, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, perm)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteContent stores a content object with header h and size bytes from
// data (ignored for symlinks). If expected is non-nil the object must hash
// to it; a mismatch stores nothing.
func (tx *Transaction) WriteContent(h *object.FileHeader, size uint64, data io.Reader, expected *object.Checksum) (object.Checksum, error) {
	w, err := tx.ContentWriter(h, size)
	if err != nil {
		return object.Checksum{}, err
	}
	if !h.IsSymlink() && data != nil {
		if _, err := io.Copy(w, io.LimitReader(data, int64(size)+1)); err != nil {
			w.Abort()
			return object.Checksum{}, err
		}
	}
	return w.Commit(expected)
}

// ContentWriter is an object being written: Write the data, then Commit
// with the expected checksum (or nil to accept whatever it hashes to).
type ContentWriter struct {
	tx     *Transaction
	h      *object.FileHeader
	size   uint64
	n      uint64
	hasher *object.ContentHasher
	tmp    string
	f      *os.File
	bw     *bufio.Writer
	fz     *object.FilezWriter
	fw     object.Deflater // pooled compressor behind fz
	out    io.Writer
}

var (
	bufWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 128<<10) }}
	// Deflate compressors cost hundreds of KiB each: reuse them.
	compressors = sync.Pool{New: func() any {
		fw, err := object.NewDeflater(io.Discard, CompressionLevel)
		if err != nil {
			panic(err) // only out of memory
		}
		return fw
	}}
)

// ContentWriter opens a writer for a content object.
func (tx *Transaction) ContentWriter(h *object.FileHeader, size uint64) (*ContentWriter, error) {
	hasher, err := object.NewContentHasher(h)
	if err != nil {
		return nil, err
	}
	if h.IsSymlink() {
		size = 0
	}
	w := &ContentWriter{tx: tx, h: h, size: size, hasher: hasher, tmp: tx.tmpName()}
	if h.IsSymlink() && !tx.r.IsArchive() {
		return w, nil
	}
	fd, err := unix.Openat(tx.dirFD, w.tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create object: %w", err)
	}
	w.f = os.NewFile(uintptr(fd), w.tmp)
	w.bw = bufWriters.Get().(*bufio.Writer)
	w.bw.Reset(w.f)
	if tx.r.IsArchive() {
		w.fw = compressors.Get().(object.Deflater)
		if w.fz, err = object.NewFilezWriterWith(w.bw, h, size, CompressionLevel, w.fw); err != nil {
			w.Abort()
			return nil, err
		}
		w.out = w.fz
	} else {
		w.out = w.bw
	}
	return w, nil
}

// Write appends file data.
func (w *ContentWriter) Write(p []byte) (int, error) {
	if w.n+uint64(len(p)) > w.size {
		return 0, fmt.Errorf("content longer than the declared %d bytes: %w", w.size, object.ErrSizeMismatch)
	}
	w.hasher.Write(p)
	n, err := w.out.Write(p)
	w.n += uint64(n)
	return n, err
}

func (w *ContentWriter) releaseCompressor() {
	if w.fw != nil {
		w.fw.Reset(io.Discard)
		compressors.Put(w.fw)
		w.fw = nil
	}
}

// Abort discards the object.
func (w *ContentWriter) Abort() {
	w.releaseCompressor()
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	if w.bw != nil {
		w.bw.Reset(nil)
		bufWriters.Put(w.bw)
		w.bw = nil
	}
	unix.Unlinkat(w.tx.dirFD, w.tmp, 0)
}

// Commit verifies the checksum, applies ownership, mode and xattrs (bare
// modes) and stages the object.
func (w *ContentWriter) Commit(expected *object.Checksum) (object.Checksum, error) {
	sum := w.hasher.Checksum()
	fail := func(err error) (object.Checksum, error) {
		w.Abort()
		return sum, err
	}
	if w.n != w.size {
		return fail(fmt.Errorf("content object: got %d bytes, header declares %d: %w", w.n, w.size, object.ErrSizeMismatch))
	}
	if expected != nil && sum != *expected {
		return fail(fmt.Errorf("%s.file: content hashes to %s: checksum mismatch", expected, sum))
	}
	n := object.Name{Checksum: sum, Type: object.TypeFile}
	if w.fz != nil {
		if err := w.fz.Close(); err != nil {
			return fail(err)
		}
		w.releaseCompressor()
	}
	if w.bw != nil {
		if err := w.bw.Flush(); err != nil {
			return fail(err)
		}
		w.bw.Reset(nil)
		bufWriters.Put(w.bw)
		w.bw = nil
	}
	mode := w.tx.r.mode
	if w.f != nil {
		fd := int(w.f.Fd())
		if mode != ModeArchive {
			if err := applyBareMeta(fd, w.h, mode); err != nil {
				return fail(fmt.Errorf("%s: %w", n, err))
			}
		} else if err := unix.Fchmod(fd, 0o644); err != nil {
			return fail(err)
		}
		if err := w.f.Close(); err != nil {
			w.f = nil
			return fail(err)
		}
		w.f = nil
	} else {
		// A bare-mode symlink.
		if err := unix.Symlinkat(w.h.SymlinkTarget, w.tx.dirFD, w.tmp); err != nil {
			return fail(fmt.Errorf("%s: %w", n, err))
		}
		if mode == ModeBare {
			if err := unix.Fchownat(w.tx.dirFD, w.tmp, int(w.h.UID), int(w.h.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fail(fmt.Errorf("%s: chown: %w", n, err))
			}
			if err := applyXattrs(-1, filepath.Join(w.tx.dir, w.tmp), w.h.Xattrs); err != nil {
				return fail(fmt.Errorf("%s: %w", n, err))
			}
		}
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {}}
		if err := unix.UtimesNanoAt(w.tx.dirFD, w.tmp, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fail(err)
		}
	}
	return sum, w.tx.stage(n, w.tmp)
}

// applyBareMeta gives a bare object file its recorded ownership, mode and
// xattrs, and mtime 0 as libostree does for every bare object.
func applyBareMeta(fd int, h *object.FileHeader, mode Mode) error {
	if mode == ModeBare {
		if err := unix.Fchown(fd, int(h.UID), int(h.GID)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
		if err := applyXattrs(fd, "", h.Xattrs); err != nil {
			return err
		}
	}
	perm := h.Mode & object.ModePermMask
	if mode == ModeBareUserOnly {
		// The mode keeps no ownership and no xattrs: an object whose
		// checksum covers them could never verify again.
		if perm&^0o775 != 0 || h.UID != 0 || h.GID != 0 || len(h.Xattrs) > 0 {
			return fmt.Errorf("uid %d, gid %d, mode %#o, %d xattrs cannot be stored in a bare-user-only repository (it keeps only uid 0, gid 0, no xattrs, no setuid/setgid/sticky/o+w)", h.UID, h.GID, h.Mode, len(h.Xattrs))
		}
	}
	if err := unix.Fchmod(fd, perm); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {}}
	return unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH)
}

// SetRef queues a ref move (a zero checksum deletes the ref) that Commit
// performs after the transaction's objects are durable and before it
// releases the repository lock, as libostree's transaction_set_ref does:
// a prune never sees the new commit without its ref.
func (tx *Transaction) SetRef(remote, ref string, c object.Checksum) error {
	if err := validateRefTarget(remote, ref); err != nil {
		return err
	}
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.done {
		return fmt.Errorf("transaction already finished")
	}
	tx.refs = append(tx.refs, refUpdate{remote, ref, c})
	return nil
}

// Commit makes every staged object visible: data is synced first, then
// content and tree objects are renamed into place, synced, and only then
// commits, so a visible commit always has its whole tree. Refs queued with
// SetRef move last, still under the repository lock.
func (tx *Transaction) Commit() error {
	tx.mu.Lock()
	if tx.done {
		tx.mu.Unlock()
		return fmt.Errorf("transaction already finished")
	}
	tx.done = true
	names := make([]object.Name, 0, len(tx.staged))
	for n := range tx.staged {
		names = append(names, n)
	}
	tx.mu.Unlock()
	defer tx.cleanup()

	// Commits (and their detached metadata) go last.
	rank := func(t object.Type) int {
		if t == object.TypeCommit || t == object.TypeCommitMeta || t == object.TypeTombstoneCommit {
			return 1
		}
		return 0
	}
	sort.Slice(names, func(i, j int) bool { return rank(names[i].Type) < rank(names[j].Type) })

	if err := tx.sync(); err != nil {
		return err
	}
	madeDirs := map[string]bool{}
	phase := 0
	for _, n := range names {
		if rank(n.Type) != phase {
			if err := tx.sync(); err != nil {
				return err
			}
			phase = rank(n.Type)
		}
		rel := tx.r.loosePath(n.Checksum, n.Type)
		prefix := rel[:2]
		if !madeDirs[prefix] {
			if err := unix.Mkdirat(tx.r.objDirFD, prefix, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("commit transaction: mkdir objects/%s: %w", prefix, err)
			}
			madeDirs[prefix] = true
		}
		if err := tx.publish(tx.staged[n], rel, n.Type == object.TypeCommitMeta); err != nil {
			return fmt.Errorf("commit transaction: %s: %w", n, err)
		}
	}
	if err := tx.sync(); err != nil {
		return err
	}
	for _, u := range tx.refs {
		if err := tx.r.SetRef(u.remote, u.ref, u.commit); err != nil {
			return fmt.Errorf("commit transaction: %w", err)
		}
	}
	return nil
}

// publish moves a staged file into objects/ without replacing an existing
// object (its inode may be hardlinked into checkouts), except for detached
// metadata, which is replaced.
func (tx *Transaction) publish(tmp, rel string, replace bool) error {
	if replace {
		return unix.Renameat(tx.dirFD, tmp, tx.r.objDirFD, rel)
	}
	err := unix.Renameat2(tx.dirFD, tmp, tx.r.objDirFD, rel, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return unix.Unlinkat(tx.dirFD, tmp, 0)
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS):
		// No RENAME_NOREPLACE on this filesystem: link, then unlink.
		if err := unix.Linkat(tx.dirFD, tmp, tx.r.objDirFD, rel, 0); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		return unix.Unlinkat(tx.dirFD, tmp, 0)
	}
	return err
}

func (tx *Transaction) sync() error {
	if !tx.r.fsync {
		return nil
	}
	if err := unix.Syncfs(tx.r.objDirFD); err != nil {
		return fmt.Errorf("syncfs: %w", err)
	}
	return nil
}

// Abort discards everything staged.
func (tx *Transaction) Abort() {
	tx.mu.Lock()
	tx.done = true
	tx.mu.Unlock()
	tx.cleanup()
}

func (tx *Transaction) cleanup() {
	if tx.dirFD >= 0 {
		os.RemoveAll(tx.dir)
		unix.Close(tx.dirFD)
		tx.dirFD = -1
	}
	if tx.lockFD >= 0 {
		unix.Close(tx.lockFD)
		tx.lockFD = -1
	}
}
