// Package object defines OSTree's object types and their byte formats:
// checksums, commits, dirtrees, dirmeta, file headers, the content stream
// that content checksums cover, and the archive-mode .filez encoding.
// Everything here is pure data transformation; storage lives in package repo.
package object

import (
	"encoding/hex"
	"fmt"
)

// Checksum is a SHA-256 object name.
type Checksum [32]byte

// ZeroChecksum is the all-zero checksum, used as "none".
var ZeroChecksum Checksum

func (c Checksum) String() string { return hex.EncodeToString(c[:]) }

// IsZero reports whether c is the zero checksum.
func (c Checksum) IsZero() bool { return c == ZeroChecksum }

// ParseChecksum parses 64 lowercase hexadecimal characters.
func ParseChecksum(s string) (Checksum, error) {
	var c Checksum
	if len(s) != 64 {
		return c, fmt.Errorf("invalid checksum %q: want 64 hex characters", s)
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f') {
			return c, fmt.Errorf("invalid checksum %q: want lowercase hex", s)
		}
	}
	_, err := hex.Decode(c[:], []byte(s))
	return c, err
}

// ChecksumFromBytes converts a raw 32-byte checksum as stored in objects.
func ChecksumFromBytes(b []byte) (Checksum, error) {
	var c Checksum
	if len(b) != 32 {
		return c, fmt.Errorf("checksum has %d bytes, want 32", len(b))
	}
	copy(c[:], b)
	return c, nil
}

// Type is an OSTree object type; the values are libostree's.
type Type uint8

const (
	TypeFile            Type = 1
	TypeDirTree         Type = 2
	TypeDirMeta         Type = 3
	TypeCommit          Type = 4
	TypeTombstoneCommit Type = 5
	TypeCommitMeta      Type = 6
	TypePayloadLink     Type = 7
)

var typeNames = map[Type]string{
	TypeFile:            "file",
	TypeDirTree:         "dirtree",
	TypeDirMeta:         "dirmeta",
	TypeCommit:          "commit",
	TypeTombstoneCommit: "tombstone-commit",
	TypeCommitMeta:      "commitmeta",
	TypePayloadLink:     "payload-link",
}

func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("objtype(%d)", uint8(t))
}

// IsMeta reports whether objects of this type are metadata (GVariant data
// named by the SHA-256 of their bytes, stored alike in every repo mode).
func (t Type) IsMeta() bool { return t >= TypeDirTree && t <= TypeCommitMeta }

// ParseType maps an object file extension (without the dot) to its type.
// The archive extension "filez" maps to TypeFile.
func ParseType(ext string) (Type, error) {
	if ext == "filez" {
		return TypeFile, nil
	}
	for t, s := range typeNames {
		if s == ext {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown object type %q", ext)
}

// Name identifies an object: its checksum and type.
type Name struct {
	Checksum Checksum
	Type     Type
}

func (n Name) String() string { return n.Checksum.String() + "." + n.Type.String() }

// LoosePath returns the path of a loose object relative to the repository's
// objects directory: XX/YYYY….ext, with ".filez" for content in archive mode.
func LoosePath(c Checksum, t Type, archive bool) string {
	h := c.String()
	ext := t.String()
	if t == TypeFile && archive {
		ext = "filez"
	}
	return h[:2] + "/" + h[2:] + "." + ext
}
