package object

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
	"unicode/utf8"

	"github.com/osupdate/os-update/repo/gvariant"
)

// GVariant types of OSTree objects.
var (
	CommitType    = gvariant.MustParseType("(a{sv}aya(say)sstayay)")
	DirTreeType   = gvariant.MustParseType("(a(say)a(sayay))")
	DirMetaType   = gvariant.MustParseType("(uuua(ayay))")
	FileHdrType   = gvariant.MustParseType("(uuuusa(ayay))")
	FilezHdrType  = gvariant.MustParseType("(tuuuusa(ayay))")
	VarDictType   = gvariant.MustParseType("a{sv}")
	xattrsType    = gvariant.MustParseType("a(ayay)")
	stringArrType = gvariant.MustParseType("as")
)

// Mode bits, as in st_mode.
const (
	ModeTypeMask = 0o170000
	ModeDir      = 0o040000
	ModeRegular  = 0o100000
	ModeSymlink  = 0o120000
	ModePermMask = 0o7777
)

// be32 converts between host values and the big-endian words libostree
// stores inside little-endian GVariant integers.
func be32(v uint32) uint32 { return bits.ReverseBytes32(v) }
func be64(v uint64) uint64 { return bits.ReverseBytes64(v) }

// Xattr is one extended attribute. Name is stored as libostree does: the
// attribute name followed by a NUL byte.
type Xattr struct {
	Name  []byte
	Value []byte
}

// XattrName returns the attribute name without its stored NUL terminator.
func (x Xattr) XattrName() string { return string(bytes.TrimSuffix(x.Name, []byte{0})) }

func xattrsValue(xs []Xattr) []gvariant.Value {
	out := make([]gvariant.Value, len(xs))
	for i, x := range xs {
		out[i] = []gvariant.Value{x.Name, x.Value}
	}
	return out
}

func xattrsFrom(v gvariant.Value) []Xattr {
	items := v.([]gvariant.Value)
	if len(items) == 0 {
		return nil
	}
	out := make([]Xattr, len(items))
	for i, it := range items {
		p := it.([]gvariant.Value)
		out[i] = Xattr{Name: p[0].([]byte), Value: p[1].([]byte)}
	}
	return out
}

// MetaEntry is one key of an a{sv} dictionary.
type MetaEntry struct {
	Key   string
	Value gvariant.Variant
}

// Metadata is an a{sv} dictionary. Its order is kept as written: libostree
// does not sort these, and re-encoding must reproduce the stored bytes.
type Metadata []MetaEntry

// Get returns the value of key.
func (m Metadata) Get(key string) (gvariant.Variant, bool) {
	for _, e := range m {
		if e.Key == key {
			return e.Value, true
		}
	}
	return gvariant.Variant{}, false
}

// String returns the value of key if it is a string.
func (m Metadata) String(key string) string {
	v, ok := m.Get(key)
	if !ok {
		return ""
	}
	s, _ := v.Value.(string)
	return s
}

// Set replaces key's value or appends it.
func (m *Metadata) Set(key string, v gvariant.Variant) {
	for i := range *m {
		if (*m)[i].Key == key {
			(*m)[i].Value = v
			return
		}
	}
	*m = append(*m, MetaEntry{Key: key, Value: v})
}

// Delete removes key.
func (m *Metadata) Delete(key string) {
	out := (*m)[:0]
	for _, e := range *m {
		if e.Key != key {
			out = append(out, e)
		}
	}
	*m = out
}

func (m Metadata) value() []gvariant.Value {
	out := make([]gvariant.Value, len(m))
	for i, e := range m {
		out[i] = []gvariant.Value{e.Key, e.Value}
	}
	return out
}

func metadataFrom(v gvariant.Value) Metadata {
	items := v.([]gvariant.Value)
	out := make(Metadata, len(items))
	for i, it := range items {
		p := it.([]gvariant.Value)
		out[i] = MetaEntry{Key: p[0].(string), Value: p[1].(gvariant.Variant)}
	}
	return out
}

// MarshalMetadata serializes an a{sv} dictionary (detached metadata,
// summary.sig, delta metadata).
func MarshalMetadata(m Metadata) ([]byte, error) {
	for _, e := range m {
		if e.Key == "" {
			return nil, fmt.Errorf("metadata key is empty")
		}
	}
	return gvariant.Marshal(VarDictType, m.value())
}

// UnmarshalMetadata decodes an a{sv} dictionary.
func UnmarshalMetadata(b []byte) (Metadata, error) {
	v, err := gvariant.Unmarshal(VarDictType, b)
	if err != nil {
		return nil, err
	}
	return metadataFrom(v), nil
}

// ValueOfMetadata converts m for embedding in a larger GVariant value.
func ValueOfMetadata(m Metadata) gvariant.Value { return m.value() }

// MetadataFromValue converts a decoded a{sv} value.
func MetadataFromValue(v gvariant.Value) Metadata { return metadataFrom(v) }

// Commit is a commit object.
type Commit struct {
	Metadata  Metadata
	Parent    Checksum // zero when there is no parent
	Subject   string
	Body      string
	Timestamp uint64 // seconds since the epoch, UTC
	RootTree  Checksum
	RootMeta  Checksum
}

// HasParent reports whether the commit names a parent.
func (c *Commit) HasParent() bool { return !c.Parent.IsZero() }

// Version is the commit's "version" metadata, or "".
func (c *Commit) Version() string { return c.Metadata.String("version") }

// ContentChecksum is what `ostree show` prints as ContentChecksum: a hash
// of the root dirtree and dirmeta checksums, stable across re-commits of
// the same tree.
func (c *Commit) ContentChecksum() Checksum {
	h := sha256.New()
	h.Write(c.RootTree[:])
	h.Write(c.RootMeta[:])
	var out Checksum
	h.Sum(out[:0])
	return out
}

// Marshal serializes the commit in normal form.
func (c *Commit) Marshal() ([]byte, error) {
	for _, e := range c.Metadata {
		if e.Key == "" {
			return nil, fmt.Errorf("commit metadata key is empty")
		}
	}
	var parent []byte
	if c.HasParent() {
		parent = c.Parent[:]
	}
	return gvariant.Marshal(CommitType, []gvariant.Value{
		c.Metadata.value(), parent, []gvariant.Value{}, c.Subject, c.Body,
		be64(c.Timestamp), c.RootTree[:], c.RootMeta[:],
	})
}

// UnmarshalCommit decodes and validates a commit object.
func UnmarshalCommit(b []byte) (*Commit, error) {
	v, err := gvariant.Unmarshal(CommitType, b)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	f := v.([]gvariant.Value)
	c := &Commit{
		Metadata:  metadataFrom(f[0]),
		Subject:   f[3].(string),
		Body:      f[4].(string),
		Timestamp: be64(f[5].(uint64)),
	}
	for _, e := range c.Metadata {
		if e.Key == "" {
			return nil, fmt.Errorf("commit: empty metadata key")
		}
	}
	if p := f[1].([]byte); len(p) != 0 {
		if c.Parent, err = ChecksumFromBytes(p); err != nil {
			return nil, fmt.Errorf("commit: parent: %w", err)
		}
	}
	if c.RootTree, err = ChecksumFromBytes(f[6].([]byte)); err != nil {
		return nil, fmt.Errorf("commit: root dirtree: %w", err)
	}
	if c.RootMeta, err = ChecksumFromBytes(f[7].([]byte)); err != nil {
		return nil, fmt.Errorf("commit: root dirmeta: %w", err)
	}
	return c, nil
}

// DirTreeFile is a non-directory entry (regular file or symlink).
type DirTreeFile struct {
	Name     string
	Checksum Checksum
}

// DirTreeDir is a subdirectory entry.
type DirTreeDir struct {
	Name string
	Tree Checksum
	Meta Checksum
}

// DirTree is a directory listing. Both lists are sorted by name (strcmp).
type DirTree struct {
	Files []DirTreeFile
	Dirs  []DirTreeDir
}

// ValidateName checks a dirtree entry name: non-empty UTF-8 with no '/',
// and not "." or "..".
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty file name")
	case name == "." || name == "..":
		return fmt.Errorf("invalid file name %q", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("file name %q is not UTF-8", name)
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '/' || name[i] == 0 {
			return fmt.Errorf("invalid file name %q", name)
		}
	}
	return nil
}

// Validate checks names, order and uniqueness across both lists.
func (d *DirTree) Validate() error {
	for i, f := range d.Files {
		if err := ValidateName(f.Name); err != nil {
			return err
		}
		if i > 0 && d.Files[i-1].Name >= f.Name {
			return fmt.Errorf("file entries not sorted or duplicated at %q", f.Name)
		}
	}
	for i, e := range d.Dirs {
		if err := ValidateName(e.Name); err != nil {
			return err
		}
		if i > 0 && d.Dirs[i-1].Name >= e.Name {
			return fmt.Errorf("directory entries not sorted or duplicated at %q", e.Name)
		}
	}
	// Both lists are sorted: a merge finds a name present in both.
	for i, j := 0, 0; i < len(d.Files) && j < len(d.Dirs); {
		switch {
		case d.Files[i].Name == d.Dirs[j].Name:
			return fmt.Errorf("name %q is both a file and a directory", d.Files[i].Name)
		case d.Files[i].Name < d.Dirs[j].Name:
			i++
		default:
			j++
		}
	}
	return nil
}

// Marshal serializes the dirtree; it fails if the tree is invalid.
func (d *DirTree) Marshal() ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("dirtree: %w", err)
	}
	files := make([]gvariant.Value, len(d.Files))
	for i := range d.Files {
		files[i] = []gvariant.Value{d.Files[i].Name, d.Files[i].Checksum[:]}
	}
	dirs := make([]gvariant.Value, len(d.Dirs))
	for i := range d.Dirs {
		dirs[i] = []gvariant.Value{d.Dirs[i].Name, d.Dirs[i].Tree[:], d.Dirs[i].Meta[:]}
	}
	return gvariant.Marshal(DirTreeType, []gvariant.Value{files, dirs})
}

// UnmarshalDirTree decodes and validates a dirtree object.
func UnmarshalDirTree(b []byte) (*DirTree, error) {
	v, err := gvariant.Unmarshal(DirTreeType, b)
	if err != nil {
		return nil, fmt.Errorf("dirtree: %w", err)
	}
	f := v.([]gvariant.Value)
	files := f[0].([]gvariant.Value)
	dirs := f[1].([]gvariant.Value)
	d := &DirTree{Files: make([]DirTreeFile, len(files)), Dirs: make([]DirTreeDir, len(dirs))}
	for i, it := range files {
		p := it.([]gvariant.Value)
		d.Files[i].Name = p[0].(string)
		if d.Files[i].Checksum, err = ChecksumFromBytes(p[1].([]byte)); err != nil {
			return nil, fmt.Errorf("dirtree: file %q: %w", d.Files[i].Name, err)
		}
	}
	for i, it := range dirs {
		p := it.([]gvariant.Value)
		d.Dirs[i].Name = p[0].(string)
		if d.Dirs[i].Tree, err = ChecksumFromBytes(p[1].([]byte)); err != nil {
			return nil, fmt.Errorf("dirtree: dir %q: %w", d.Dirs[i].Name, err)
		}
		if d.Dirs[i].Meta, err = ChecksumFromBytes(p[2].([]byte)); err != nil {
			return nil, fmt.Errorf("dirtree: dir %q: %w", d.Dirs[i].Name, err)
		}
	}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("dirtree: %w", err)
	}
	return d, nil
}

// DirMeta is a directory's ownership, mode and xattrs.
type DirMeta struct {
	UID, GID, Mode uint32
	Xattrs         []Xattr
}

// Validate checks that the mode describes a directory.
func (m *DirMeta) Validate() error {
	if m.Mode&ModeTypeMask != ModeDir || m.Mode&^(ModeTypeMask|ModePermMask) != 0 {
		return fmt.Errorf("dirmeta: invalid directory mode %#o", m.Mode)
	}
	return nil
}

// Marshal serializes the dirmeta.
func (m *DirMeta) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return gvariant.Marshal(DirMetaType, []gvariant.Value{be32(m.UID), be32(m.GID), be32(m.Mode), xattrsValue(m.Xattrs)})
}

// UnmarshalDirMeta decodes and validates a dirmeta object.
func UnmarshalDirMeta(b []byte) (*DirMeta, error) {
	v, err := gvariant.Unmarshal(DirMetaType, b)
	if err != nil {
		return nil, fmt.Errorf("dirmeta: %w", err)
	}
	f := v.([]gvariant.Value)
	m := &DirMeta{UID: be32(f[0].(uint32)), GID: be32(f[1].(uint32)), Mode: be32(f[2].(uint32)), Xattrs: xattrsFrom(f[3])}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// Tombstone is the content of a tombstone-commit object.
func MarshalTombstone(commit Checksum) ([]byte, error) {
	m := Metadata{{Key: "commit", Value: gvariant.NewVariant("ay", append([]byte(commit.String()), 0))}}
	return MarshalMetadata(m)
}

// SumMeta returns the checksum of a metadata object's bytes.
func SumMeta(b []byte) Checksum { return sha256.Sum256(b) }

// ValidateMeta checks that b is a well-formed object of the metadata type t.
func ValidateMeta(t Type, b []byte) error {
	var err error
	switch t {
	case TypeCommit:
		_, err = UnmarshalCommit(b)
	case TypeDirTree:
		_, err = UnmarshalDirTree(b)
	case TypeDirMeta:
		_, err = UnmarshalDirMeta(b)
	case TypeCommitMeta, TypeTombstoneCommit:
		_, err = UnmarshalMetadata(b)
	default:
		err = fmt.Errorf("%v is not a metadata type", t)
	}
	return err
}

// StringList builds the "as" variant used by keys such as ostree.ref-binding.
func StringList(items []string) gvariant.Variant {
	v := make([]gvariant.Value, len(items))
	for i, s := range items {
		v[i] = s
	}
	return gvariant.Variant{Type: stringArrType, Value: v}
}

// putBE32 is used by the stream framing.
func putBE32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }
