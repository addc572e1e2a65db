package repo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/osupdate/os-update/internal/fsutil"
	"github.com/osupdate/os-update/repo/object"
)

// ValidateRef checks a ref name: fragments joined by '/', each matching
// [A-Za-z0-9_][-._A-Za-z0-9]*, and not itself a checksum.
func ValidateRef(ref string) error {
	if ref == "" {
		return fmt.Errorf("invalid ref: empty")
	}
	if _, err := object.ParseChecksum(ref); err == nil {
		return fmt.Errorf("invalid ref %q: looks like a checksum", ref)
	}
	for _, frag := range strings.Split(ref, "/") {
		if frag == "" {
			return fmt.Errorf("invalid ref %q: empty component", ref)
		}
		for i := 0; i < len(frag); i++ {
			c := frag[i]
			word := c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
			if !word && (i == 0 || c != '-' && c != '.') {
				return fmt.Errorf("invalid ref %q: bad character %q in %q", ref, c, frag)
			}
		}
	}
	return nil
}

// ParseRefspec splits "remote:ref" into its parts; remote is "" for a
// local ref.
func ParseRefspec(spec string) (remote, ref string, err error) {
	remote, ref, ok := strings.Cut(spec, ":")
	if !ok {
		remote, ref = "", spec
	} else if remote == "" {
		return "", "", fmt.Errorf("invalid refspec %q: empty remote", spec)
	}
	if err := ValidateRef(ref); err != nil {
		return "", "", err
	}
	return remote, ref, nil
}

func (r *Repo) refPath(remote, ref string) string {
	if remote == "" {
		return filepath.Join(r.path, "refs", "heads", ref)
	}
	return filepath.Join(r.path, "refs", "remotes", remote, ref)
}

func readRefFile(p string) (object.Checksum, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return object.Checksum{}, err
	}
	return object.ParseChecksum(strings.TrimSpace(string(b)))
}

// ErrRefNotFound is wrapped by ReadRef when the ref does not exist.
var ErrRefNotFound = errors.New("ref not found")

// ReadRef returns the commit a ref points to; remote "" means refs/heads.
// A missing ref is an error wrapping ErrRefNotFound.
func (r *Repo) ReadRef(remote, ref string) (object.Checksum, error) {
	c, err := readRefFile(r.refPath(remote, ref))
	if errors.Is(err, fs.ErrNotExist) {
		name := ref
		if remote != "" {
			name = remote + ":" + ref
		}
		return c, fmt.Errorf("ref %s: %w", name, ErrRefNotFound)
	}
	return c, err
}

func validateRefTarget(remote, ref string) error {
	if err := ValidateRef(ref); err != nil {
		return err
	}
	if remote != "" {
		if err := ValidateRef(remote); err != nil || strings.Contains(remote, "/") {
			return fmt.Errorf("invalid remote name %q", remote)
		}
	}
	return nil
}

// SetRef points a ref at a commit, atomically and durably. A zero checksum
// deletes the ref. It does not by itself protect the commit from a
// concurrent prune: write refs to new commits with Transaction.SetRef, or
// hold LockShared from making or resolving the commit until SetRef returns.
func (r *Repo) SetRef(remote, ref string, c object.Checksum) error {
	if err := validateRefTarget(remote, ref); err != nil {
		return err
	}
	p := r.refPath(remote, ref)
	if c.IsZero() {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete ref %s: %w", ref, err)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("set ref %s: %w", ref, err)
	}
	if err := fsutil.WriteFileAtomic(p, []byte(c.String()+"\n"), 0o644, r.fsync); err != nil {
		return fmt.Errorf("set ref %s: %w", ref, err)
	}
	return nil
}

// Ref is one entry of a ref listing.
type Ref struct {
	Remote string // "" for refs/heads
	Name   string
	Commit object.Checksum
}

// Refspec returns "remote:name" or "name".
func (r Ref) Refspec() string {
	if r.Remote == "" {
		return r.Name
	}
	return r.Remote + ":" + r.Name
}

// ListRefs returns local and remote-tracking refs, sorted by refspec.
func (r *Repo) ListRefs() ([]Ref, error) {
	var out []Ref
	walk := func(root, remote string) error {
		return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			// Dotfiles are never refs (ref names cannot start with '.'):
			// our .tmp- files, and what other tools leave behind
			// (.latest_rsync), which libostree ignores too.
			if d.IsDir() || strings.HasPrefix(d.Name(), ".") {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			c, err := readRefFile(p)
			if err != nil {
				return fmt.Errorf("ref %s: %w", rel, err)
			}
			out = append(out, Ref{Remote: remote, Name: filepath.ToSlash(rel), Commit: c})
			return nil
		})
	}
	if err := walk(filepath.Join(r.path, "refs", "heads"), ""); err != nil {
		return nil, err
	}
	remotes, err := os.ReadDir(filepath.Join(r.path, "refs", "remotes"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, rm := range remotes {
		if rm.IsDir() {
			if err := walk(filepath.Join(r.path, "refs", "remotes", rm.Name()), rm.Name()); err != nil {
				return nil, err
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Refspec() < out[j].Refspec() })
	return out, nil
}

// ResolveRev resolves a revision: a full checksum, a unique checksum
// prefix of at least 4 characters, a ref ("ref", "remote:ref"), each
// optionally followed by one or more '^' for parents.
func (r *Repo) ResolveRev(rev string) (object.Checksum, error) {
	base := strings.TrimRight(rev, "^")
	ups := len(rev) - len(base)
	c, err := r.resolveBase(base)
	if err != nil {
		return c, err
	}
	for i := 0; i < ups; i++ {
		cm, err := r.LoadCommit(c)
		if err != nil {
			return c, fmt.Errorf("resolve %s: %w", rev, err)
		}
		if !cm.HasParent() {
			return c, fmt.Errorf("resolve %s: commit %s has no parent", rev, c)
		}
		c = cm.Parent
	}
	return c, nil
}

func (r *Repo) resolveBase(rev string) (object.Checksum, error) {
	if c, err := object.ParseChecksum(rev); err == nil {
		return c, nil
	}
	if remote, ref, err := ParseRefspec(rev); err == nil {
		if c, err := r.ReadRef(remote, ref); err == nil {
			return c, nil
		}
		if remote == "" {
			// "remote/ref" also names a remote-tracking ref.
			if rm, rest, ok := strings.Cut(ref, "/"); ok {
				if c, err := r.ReadRef(rm, rest); err == nil {
					return c, nil
				}
			}
		}
	}
	if len(rev) >= 4 && len(rev) < 64 && isHex(rev) {
		return r.resolvePrefix(rev)
	}
	if len(rev) > 0 && len(rev) < 4 && isHex(rev) {
		return object.Checksum{}, fmt.Errorf("revision %q: no such ref, and a commit checksum prefix needs at least 4 hex characters", rev)
	}
	return object.Checksum{}, fmt.Errorf("revision %q not found", rev)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (r *Repo) resolvePrefix(prefix string) (object.Checksum, error) {
	ents, err := os.ReadDir(filepath.Join(r.path, "objects", prefix[:2]))
	if err != nil {
		return object.Checksum{}, fmt.Errorf("revision %q not found", prefix)
	}
	var found []object.Checksum
	for _, e := range ents {
		name := prefix[:2] + e.Name()
		if strings.HasSuffix(name, ".commit") && strings.HasPrefix(name, prefix) {
			c, err := object.ParseChecksum(strings.TrimSuffix(name, ".commit"))
			if err == nil {
				found = append(found, c)
			}
		}
	}
	switch len(found) {
	case 0:
		return object.Checksum{}, fmt.Errorf("revision %q not found", prefix)
	case 1:
		return found[0], nil
	}
	return object.Checksum{}, fmt.Errorf("revision %q is ambiguous (%d commits match)", prefix, len(found))
}
