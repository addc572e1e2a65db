package delta

import (
	"encoding/base64"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/osupdate/os-update/repo/object"
)

// ToBase64 encodes a checksum as libostree's "modified base64": standard
// base64 without the trailing '=', with '/' replaced by '_' ('+' is kept),
// so the name is usable as a path component.
func ToBase64(c object.Checksum) string {
	s := base64.StdEncoding.EncodeToString(c[:])
	return strings.ReplaceAll(strings.TrimSuffix(s, "="), "/", "_")
}

// FromBase64 decodes a modified-base64 checksum name (43 characters).
func FromBase64(s string) (object.Checksum, error) {
	var c object.Checksum
	if len(s) != 43 || strings.ContainsAny(s, "/=") {
		return c, fmt.Errorf("invalid delta checksum name %q", s)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(strings.ReplaceAll(s, "_", "/") + "=")
	if err != nil || len(b) != 32 {
		return c, fmt.Errorf("invalid delta checksum name %q", s)
	}
	copy(c[:], b)
	return c, nil
}

// Name is a delta's identity: From is zero for a from-empty ("scratch")
// delta.
type Name struct {
	From, To object.Checksum
}

// String is the hex form used in summaries, indexes and on the command
// line: "FROM-TO", or "TO" for a from-empty delta.
func (n Name) String() string {
	if n.From.IsZero() {
		return n.To.String()
	}
	return n.From.String() + "-" + n.To.String()
}

// ParseName parses "FROM-TO" or "TO" in hex.
func ParseName(s string) (Name, error) {
	var n Name
	var err error
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		to = from
		from = ""
	}
	if from != "" {
		if n.From, err = object.ParseChecksum(from); err != nil {
			return n, fmt.Errorf("delta name %q: %w", s, err)
		}
	}
	if n.To, err = object.ParseChecksum(to); err != nil {
		return n, fmt.Errorf("delta name %q: %w", s, err)
	}
	return n, nil
}

// Dir returns the delta's directory relative to the repository root:
// deltas/FF/FFF…-TTT… or, from empty, deltas/TT/TTT….
func (n Name) Dir() string {
	t := ToBase64(n.To)
	if n.From.IsZero() {
		return path.Join("deltas", t[:2], t[2:])
	}
	f := ToBase64(n.From)
	return path.Join("deltas", f[:2], f[2:]+"-"+t)
}

// SuperblockPath returns deltas/…/superblock for the delta from → to
// (from zero: from empty), relative to the repository root or remote URL.
func SuperblockPath(from, to object.Checksum) string {
	return path.Join(Name{from, to}.Dir(), "superblock")
}

// PartPath returns deltas/…/N, the path of part number index.
func PartPath(from, to object.Checksum, index int) string {
	return path.Join(Name{from, to}.Dir(), strconv.Itoa(index))
}

// IndexPath returns delta-indexes/TT/TTT….index, the per-target index path.
func IndexPath(to object.Checksum) string {
	t := ToBase64(to)
	return path.Join("delta-indexes", t[:2], t[2:]+".index")
}

// ParseDir reverses Dir given the two path levels under deltas/
// ("FF", "FFF…-TTT…" or "TT", "TTT…").
func ParseDir(prefix, rest string) (Name, error) {
	var n Name
	var err error
	if len(prefix) != 2 {
		return n, fmt.Errorf("invalid delta directory %s/%s", prefix, rest)
	}
	a, b, ok := strings.Cut(rest, "-")
	if !ok {
		n.To, err = FromBase64(prefix + a)
		return n, err
	}
	if n.From, err = FromBase64(prefix + a); err != nil {
		return n, err
	}
	n.To, err = FromBase64(b)
	return n, err
}
