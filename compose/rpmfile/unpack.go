package rpmfile

import (
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/cavaliergopher/cpio"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"

	"github.com/osupdate/os-update/compose/treefs"
)

// Accounts maps user and group names to ids, read from a tree.
type Accounts struct {
	Users, Groups map[string]int
}

// LoadAccounts reads etc/passwd and etc/group of the tree (both optional);
// root and its group are always known.
func LoadAccounts(root *treefs.Root) (*Accounts, error) {
	a := &Accounts{Users: map[string]int{"root": 0}, Groups: map[string]int{"root": 0}}
	for _, f := range []struct {
		path string
		m    map[string]int
	}{{"/etc/passwd", a.Users}, {"/etc/group", a.Groups}} {
		data, err := root.ReadFile(f.path)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("read tree %s: %w", f.path, err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			fields := strings.Split(line, ":")
			if len(fields) < 3 || fields[0] == "" {
				continue
			}
			if id, err := strconv.Atoi(fields[2]); err == nil && id >= 0 {
				f.m[fields[0]] = id
			}
		}
	}
	return a, nil
}

// UnpackOptions control Unpack.
type UnpackOptions struct {
	NoDocs bool             // skip %doc files (treefile documentation: false)
	Warn   func(msg string) // unknown owners, unsupported file types
	// NoSymlinkPaths refuses an entry whose parent path goes through an
	// absolute symlink, or through any symlink the same payload created
	// (a package writing through its own link reaches places its file
	// list does not name). Used when layering onto an existing tree.
	NoSymlinkPaths bool
}

// Unpack writes the payload into root and returns the files written.
// Ownership and modes come from the header; users and groups are resolved
// with acct (unknown names become root, with a warning, as rpm does).
// Ghost files are not created. Entries whose path contains ".." are
// refused; absolute names are taken relative to the tree, and symlinks in
// the tree are followed only within it.
func (p *Package) Unpack(ctx context.Context, root *treefs.Root, acct *Accounts, opts UnpackOptions) ([]File, error) {
	warn := opts.Warn
	if warn == nil {
		warn = func(string) {}
	}
	files, err := p.FileList()
	if err != nil {
		return nil, err
	}
	byPath := make(map[string]*File, len(files))
	for i := range files {
		rel, err := treefs.Clean(files[i].Path)
		if err != nil {
			return nil, fmt.Errorf("%s: header file: %w", p.NEVRA(), err)
		}
		byPath[rel] = &files[i]
	}
	if f := p.Header.GetTag(tagPayloadFmt).String(); f != "" && f != "cpio" {
		return nil, fmt.Errorf("%s: unsupported payload format %q", p.NEVRA(), f)
	}
	fh, err := os.Open(p.path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	if _, err := fh.Seek(p.payloadOffset, io.SeekStart); err != nil {
		return nil, err
	}
	payload, closeFn, err := decompressPayload(bufio.NewReaderSize(fh, 1<<16), p.Header.GetTag(tagPayloadComp).String())
	if err != nil {
		return nil, fmt.Errorf("%s: payload: %w", p.NEVRA(), err)
	}
	defer closeFn()

	owner := func(f *File) (int, int) {
		uid, ok := acct.Users[f.User]
		if !ok {
			warn(fmt.Sprintf("%s: user %q of %s does not exist, using root", p.NEVRA(), f.User, f.Path))
		}
		gid, ok := acct.Groups[f.Group]
		if !ok {
			warn(fmt.Sprintf("%s: group %q of %s does not exist, using root", p.NEVRA(), f.Group, f.Path))
		}
		return uid, gid
	}
	// Hardlink sets: every member but one has no data in the archive;
	// members are linked to the one written with data.
	pending := map[int64][]string{}
	seen := map[string]bool{}
	written := map[int64]string{}
	links := map[string]bool{}     // symlinks this payload created
	checked := map[string]string{} // parent dir → "" if fine, else the error
	var out []File
	cr := cpio.NewReader(payload)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: payload: %w", p.NEVRA(), err)
		}
		// Names are "./usr/..." from rpmbuild, "/usr/..." from some other
		// writers; both mean a path inside the tree (rpm treats them
		// alike). Only ".." could climb out, and Clean refuses it.
		rel, err := treefs.Clean(h.Name)
		if err != nil {
			return nil, fmt.Errorf("%s: payload entry: %w", p.NEVRA(), err)
		}
		if rel == "" {
			continue
		}
		f := byPath[rel]
		if f == nil {
			return nil, fmt.Errorf("%s: payload entry %q is not in the header", p.NEVRA(), h.Name)
		}
		if opts.NoSymlinkPaths {
			if msg := symlinkInPath(root, rel, links, checked); msg != "" {
				return nil, fmt.Errorf("%s: payload entry /%s %s", p.NEVRA(), rel, msg)
			}
		}
		seen[rel] = true
		if f.Ghost() || (opts.NoDocs && f.Doc()) {
			continue
		}
		uid, gid := owner(f)
		switch f.Mode & 0o170000 {
		case 0o040000:
			err = root.Mkdir(rel, f.Mode, uid, gid)
		case 0o120000:
			target := f.Linkto
			if target == "" {
				b, rerr := io.ReadAll(io.LimitReader(cr, 4096))
				if rerr != nil {
					return nil, fmt.Errorf("%s: %s: %w", p.NEVRA(), rel, rerr)
				}
				target = string(b)
			}
			err = root.Symlink(target, rel, uid, gid)
			links[rel] = true
		case 0o100000:
			key := int64(h.Inode)
			if h.Links > 1 && h.Size == 0 {
				if first, ok := written[key]; ok {
					err = root.Link(first, rel)
				} else {
					pending[key] = append(pending[key], rel)
					continue
				}
				break
			}
			err = root.WriteFile(rel, io.LimitReader(cr, h.Size), f.Mode, uid, gid)
			if err == nil && h.Links > 1 {
				written[key] = rel
				for _, other := range pending[key] {
					if err = root.Link(rel, other); err != nil {
						break
					}
				}
				delete(pending, key)
			}
		default:
			warn(fmt.Sprintf("%s: %s: device nodes, fifos and sockets cannot be stored in a commit; skipped", p.NEVRA(), f.Path))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: unpack: %w", p.NEVRA(), err)
		}
		out = append(out, *f)
	}
	// Hardlink sets of empty files never carry data.
	for _, set := range pending {
		f := byPath[set[0]]
		uid, gid := owner(f)
		if err := root.WriteFile(set[0], nil, f.Mode, uid, gid); err != nil {
			return nil, fmt.Errorf("%s: unpack: %w", p.NEVRA(), err)
		}
		out = append(out, *f)
		for _, other := range set[1:] {
			if err := root.Link(set[0], other); err != nil {
				return nil, fmt.Errorf("%s: unpack: %w", p.NEVRA(), err)
			}
			out = append(out, *byPath[other])
		}
	}
	// Every file of the header but ghosts must have come with the payload.
	var missing []string
	for rel, f := range byPath {
		if !seen[rel] && !f.Ghost() {
			missing = append(missing, f.Path)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("%s: %s is in the header but not in the payload", p.NEVRA(), missing[0])
	}
	return out, nil
}

// symlinkInPath checks the parent directories of rel: it returns why the
// path is refused, or "". Results per directory are cached in checked.
func symlinkInPath(root *treefs.Root, rel string, links map[string]bool, checked map[string]string) string {
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		dir := strings.Join(parts[:i], "/")
		if links[dir] {
			return fmt.Sprintf("goes through /%s, a symlink created by the same package", dir)
		}
		msg, ok := checked[dir]
		if !ok {
			if st, err := root.Lstat(dir); err == nil && st.Mode&0o170000 == 0o120000 {
				if target, err := root.Readlink(dir); err == nil && strings.HasPrefix(target, "/") {
					msg = fmt.Sprintf("goes through /%s, an absolute symlink to %s", dir, target)
				}
			}
			checked[dir] = msg
		}
		if msg != "" {
			return msg
		}
	}
	return ""
}

func decompressPayload(r io.Reader, comp string) (io.Reader, func(), error) {
	nop := func() {}
	switch comp {
	case "gzip", "":
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return z, func() { z.Close() }, nil
	case "xz":
		z, err := xz.NewReader(r)
		return z, nop, err
	case "lzma":
		z, err := lzma.NewReader(r)
		return z, nop, err
	case "zstd":
		z, err := zstd.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return z, z.Close, nil
	case "bzip2":
		return bzip2.NewReader(r), nop, nil
	case "identity":
		return r, nop, nil
	}
	return nil, nil, fmt.Errorf("unsupported payload compression %q", comp)
}
