package repo

import (
	"encoding/binary"
	"fmt"
	"regexp"
	"strconv"

	"github.com/osupdate/os-update/internal/fsutil"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
)

// minFreeSizeRe is the syntax libostree accepts for min-free-space-size.
var minFreeSizeRe = regexp.MustCompile(`^([0-9]+)(M|G|T)B$`)

// MinFreeSpace is the space the repository's configuration says must stay
// free on its file system, with libostree's rules: [core]
// min-free-space-size (NMB, NGB or NTB, binary units) wins when set and
// non-zero; otherwise min-free-space-percent (0-99) of the file system's
// size; with neither key, 3 percent.
func (r *Repo) MinFreeSpace() (fsutil.Reserve, error) {
	cfg := r.Config()
	sizeStr, hasSize := cfg.Get("core", "min-free-space-size")
	pctStr, hasPct := cfg.Get("core", "min-free-space-percent")
	var mb uint64
	if hasSize {
		m := minFreeSizeRe.FindStringSubmatch(sizeStr)
		if m == nil {
			return fsutil.Reserve{}, fmt.Errorf("%s/config: invalid min-free-space-size %q: it should be of the format '123MB', '123GB' or '123TB'", r.path, sizeStr)
		}
		n, err := strconv.ParseUint(m[1], 10, 64)
		shift := map[string]uint{"M": 0, "G": 10, "T": 20}[m[2]]
		if err != nil || n > (^uint64(0)>>20)>>shift {
			return fsutil.Reserve{}, fmt.Errorf("%s/config: min-free-space-size %q is too large", r.path, sizeStr)
		}
		mb = n << shift
	}
	if mb > 0 {
		return fsutil.Reserve{Bytes: mb << 20, Option: "min-free-space-size=" + sizeStr}, nil
	}
	pct := uint64(3)
	opt := "min-free-space-percent=3 (the default)"
	switch {
	case hasPct:
		n, err := strconv.ParseUint(pctStr, 10, 64)
		if err != nil || n > 99 {
			return fsutil.Reserve{}, fmt.Errorf("%s/config: invalid min-free-space-percent %q: must be a number from 0 to 99", r.path, pctStr)
		}
		pct, opt = n, "min-free-space-percent="+pctStr
	case hasSize:
		pct = 0 // min-free-space-size=0MB alone turns the check off
	}
	if pct == 0 {
		return fsutil.Reserve{}, nil
	}
	sp, err := fsutil.StatSpace(r.path)
	if err != nil {
		return fsutil.Reserve{}, err
	}
	return fsutil.Reserve{Bytes: sp.Total * pct / 100, Option: opt}, nil
}

// CheckSpace fails with a *fsutil.NoSpaceError unless need bytes can be
// written to the repository's file system while leaving MinFreeSpace
// free. op names the operation in the error.
func (r *Repo) CheckSpace(op string, need uint64) error {
	res, err := r.MinFreeSpace()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fsutil.CheckSpace(op, r.path, need, res)
}

// CommitSizes reads the "ostree.sizes" metadata that `ostree commit
// --generate-sizes` records: for each content object, its archived
// (compressed) and unpacked size. ok is false if the commit has none.
func CommitSizes(cm *object.Commit) (sizes map[object.Checksum][2]uint64, ok bool, err error) {
	v, found := cm.Metadata.Get("ostree.sizes")
	if !found {
		return nil, false, nil
	}
	items, isArr := v.Value.([]gvariant.Value)
	if !isArr {
		return nil, false, fmt.Errorf("ostree.sizes: not an array")
	}
	sizes = make(map[object.Checksum][2]uint64, len(items))
	for i, it := range items {
		pair, isPair := it.([]gvariant.Value)
		if !isPair || len(pair) != 2 {
			return nil, false, fmt.Errorf("ostree.sizes[%d]: not a (ayay) pair", i)
		}
		csum, ok1 := pair[0].([]byte)
		enc, ok2 := pair[1].([]byte)
		if !ok1 || !ok2 || len(csum) != 32 {
			return nil, false, fmt.Errorf("ostree.sizes[%d]: malformed entry", i)
		}
		archived, n := binary.Uvarint(enc)
		if n <= 0 {
			return nil, false, fmt.Errorf("ostree.sizes[%d]: malformed archived size", i)
		}
		unpacked, m := binary.Uvarint(enc[n:])
		if m <= 0 {
			return nil, false, fmt.Errorf("ostree.sizes[%d]: malformed unpacked size", i)
		}
		var c object.Checksum
		copy(c[:], csum)
		sizes[c] = [2]uint64{archived, unpacked}
	}
	return sizes, true, nil
}

// BytesToStore is how many bytes the objects listed in sizes that are
// not yet in the repository take once stored: archived sizes for an
// archive repository, unpacked sizes otherwise.
func (r *Repo) BytesToStore(sizes map[object.Checksum][2]uint64) uint64 {
	var n uint64
	for c, s := range sizes {
		if ok, _ := r.HasObject(c, object.TypeFile); ok {
			continue
		}
		if r.mode == ModeArchive {
			n += s[0]
		} else {
			n += s[1]
		}
	}
	return n
}
