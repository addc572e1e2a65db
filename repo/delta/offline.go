package delta

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
)

// ReadSuperblockFile reads a superblock from a delta directory or from
// the superblock file itself, and returns it with the directory holding
// the parts.
func ReadSuperblockFile(path string) (raw []byte, dir string, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, "", err
	}
	dir, file := path, filepath.Join(path, "superblock")
	if !st.IsDir() {
		dir, file = filepath.Dir(path), path
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	raw, err = io.ReadAll(io.LimitReader(f, MaxSuperblockSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", file, err)
	}
	return raw, dir, nil
}

// DirSource returns an ApplyOptions.FetchPart that reads parts from a
// delta directory.
func DirSource(dir string) func(context.Context, int) (io.ReadCloser, error) {
	return func(_ context.Context, i int) (io.ReadCloser, error) {
		return os.Open(filepath.Join(dir, strconv.Itoa(i)))
	}
}

// ApplyOffline applies the delta at path (its directory or its superblock
// file) to r in one transaction. Like `ostree static-delta apply-offline`
// it does not move refs, and a delta whose fallback objects r lacks is
// refused. It returns the delta's name.
func ApplyOffline(ctx context.Context, r *repo.Repo, path string) (Name, *ApplyStats, error) {
	raw, dir, err := ReadSuperblockFile(path)
	if err != nil {
		return Name{}, nil, fmt.Errorf("apply delta %s: %w", path, err)
	}
	sb, err := DecodeSuperblock(raw)
	if err != nil {
		return Name{}, nil, fmt.Errorf("apply delta %s: %w", path, err)
	}
	var st *ApplyStats
	err = r.Update(ctx, func(tx *repo.Transaction) error {
		st, err = applySuperblock(ctx, tx, sb, ApplyOptions{FetchPart: DirSource(dir)})
		return err
	})
	if err != nil {
		return sb.Name, st, fmt.Errorf("delta %s: %w", sb.Name, err)
	}
	return sb.Name, st, nil
}

// List returns the deltas stored in a repository's deltas/ directory,
// sorted by name. Directories that do not decode as delta names, or have
// no superblock, are skipped.
func List(r *repo.Repo) ([]Name, error) {
	root := filepath.Join(r.Path(), "deltas")
	prefixes, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list deltas: %w", err)
	}
	var out []Name
	for _, p := range prefixes {
		if !p.IsDir() {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(root, p.Name()))
		if err != nil {
			return nil, fmt.Errorf("list deltas: %w", err)
		}
		for _, e := range ents {
			n, err := ParseDir(p.Name(), e.Name())
			if err != nil || !e.IsDir() {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, p.Name(), e.Name(), "superblock")); err != nil {
				continue
			}
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// ReadSuperblock returns the raw superblock of a delta stored in r.
func ReadSuperblock(r *repo.Repo, n Name) ([]byte, error) {
	raw, _, err := ReadSuperblockFile(filepath.Join(r.Path(), n.Dir(), "superblock"))
	if err != nil {
		return nil, fmt.Errorf("delta %s: %w", n, err)
	}
	return raw, nil
}

// Disassemble decodes a part's operations for display and tests, pairing
// each 'S', 'o' with the object it creates.
func Disassemble(part *Part, objs []object.Name) ([]Op, error) {
	r := NewOpReader(part.Ops)
	var out []Op
	next := 0
	for {
		meta := next < len(objs) && objs[next].Type.IsMeta()
		op, err := r.Next(meta)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		switch op.Code {
		case OpOpenSpliceAndClose, OpClose:
			next++
		}
		out = append(out, op)
	}
}

// OpCounts counts the operations of part i of a delta stored in r, by
// opcode, reading the part as Apply does (streamed, size and checksum
// checked, payload spooled in r's tmp/ beyond SpoolMemory).
func OpCounts(ctx context.Context, r *repo.Repo, sb *Superblock, i int) (map[byte]int, error) {
	if i < 0 || i >= len(sb.Parts) {
		return nil, fmt.Errorf("delta %s: no part %d", sb.Name, i)
	}
	p, _, err := loadPart(ctx, sb, i, DirSource(filepath.Join(r.Path(), sb.Name.Dir())), bestXZ(), tmpDir(r))
	if err != nil {
		return nil, fmt.Errorf("delta %s: %s: %w", sb.Name, partLabel(i), err)
	}
	defer p.Close()
	objs := sb.Parts[i].Objects
	ops := newOpStream(bufio.NewReaderSize(p.ops, 64<<10))
	counts := map[byte]int{}
	next := 0
	for {
		op, err := ops.Next(next < len(objs) && objs[next].Type.IsMeta())
		if err == io.EOF {
			return counts, nil
		}
		if err != nil {
			return nil, fmt.Errorf("delta %s: %s: %w", sb.Name, partLabel(i), err)
		}
		if op.Code == OpOpenSpliceAndClose || op.Code == OpClose {
			next++
		}
		counts[op.Code]++
	}
}
