package initramfs

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Entry is one file of an archive. Mode holds the full st_mode (type and
// permission bits).
type Entry struct {
	Name         string // relative, no leading "/"
	Mode         uint32
	Data         []byte // regular files
	Link         string // symlinks
	Major, Minor uint32 // device nodes
}

const (
	modeDir  = 0o040000
	modeReg  = 0o100000
	modeLnk  = 0o120000
	modeChr  = 0o020000
	modeMask = 0o170000
)

// WriteCPIO writes entries as a newc ("070701") cpio archive, the format
// the kernel unpacks into its rootfs. The output depends only on the
// entries and mtime: entries are sorted by name (so parents precede
// children), inode numbers are assigned in that order, owners are root.
func WriteCPIO(w io.Writer, entries []Entry, mtime int64) error {
	sorted := append([]Entry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	seen := map[string]bool{}
	var off int64
	pad := func() error {
		if n := (4 - off%4) % 4; n > 0 {
			k, err := w.Write(make([]byte, n))
			off += int64(k)
			return err
		}
		return nil
	}
	write := func(ino int, e Entry, body []byte) error {
		nlink := 1
		if e.Mode&modeMask == modeDir {
			nlink = 2
		}
		hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, e.Mode, 0, 0, nlink, uint32(mtime), len(body), 0, 0, e.Major, e.Minor, len(e.Name)+1, 0)
		k, err := io.WriteString(w, hdr+e.Name+"\x00")
		off += int64(k)
		if err != nil {
			return err
		}
		if err := pad(); err != nil {
			return err
		}
		k, err = w.Write(body)
		off += int64(k)
		if err != nil {
			return err
		}
		return pad()
	}
	for i, e := range sorted {
		if e.Name == "" || strings.HasPrefix(e.Name, "/") || strings.Contains("/"+e.Name+"/", "/../") {
			return fmt.Errorf("cpio: bad entry name %q", e.Name)
		}
		if seen[e.Name] {
			return fmt.Errorf("cpio: duplicate entry %q", e.Name)
		}
		seen[e.Name] = true
		var body []byte
		switch e.Mode & modeMask {
		case modeReg:
			body = e.Data
		case modeLnk:
			body = []byte(e.Link)
		case modeDir, modeChr:
		default:
			return fmt.Errorf("cpio: %s: unsupported file type %o", e.Name, e.Mode&modeMask)
		}
		if err := write(i+1, e, body); err != nil {
			return fmt.Errorf("cpio: %s: %w", e.Name, err)
		}
	}
	return write(0, Entry{Name: "TRAILER!!!"}, nil)
}
