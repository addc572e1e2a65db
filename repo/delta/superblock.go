package delta

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
)

// GVariant types of the delta formats.
var (
	SuperblockType = gvariant.MustParseType("(a{sv}tayay" + object.CommitType.String() + "aya(uayttay)a(yaytt))")
	partHeaderType = gvariant.MustParseType("(uayttay)")
	PartFileType   = gvariant.MustParseType("(yay)")
	PayloadType    = gvariant.MustParseType("(a(uuu)aa(ayay)ayay)")
	xattrsType     = gvariant.MustParseType("a(ayay)")
)

// Metadata keys of the superblock.
const (
	KeyEndianness = "ostree.endianness"
)

// signedMagic starts a signed superblock ("OSTSGNDT"), which only offline
// tools understand.
var signedMagic = []byte("OSTSGNDT")

// MaxSuperblockSize bounds a superblock read from anywhere. Inline parts
// live in it, so it is larger than the metadata cap.
const MaxSuperblockSize = 64 << 20

// ErrMalformed is wrapped by every error about bytes that are not a valid
// delta (as opposed to I/O errors or missing local objects).
var ErrMalformed = errors.New("malformed static delta")

// PartHeader describes one part in the superblock.
type PartHeader struct {
	Version  uint32
	Checksum [32]byte      // SHA-256 of the whole part file
	Size     uint64        // length of the part file
	USize    uint64        // sum of the uncompressed sizes of its objects
	Objects  []object.Name // created in this order
}

// Fallback is a content object the delta does not carry: the client
// fetches it as a plain .filez object.
type Fallback struct {
	Object object.Name
	Size   uint64 // compressed (.filez) size
	USize  uint64 // uncompressed size
}

// Superblock is a decoded delta superblock.
type Superblock struct {
	Name Name
	// Metadata holds the user-supplied keys, without the ones this
	// package interprets (endianness, inline parts, detached metadata).
	Metadata   object.Metadata
	Timestamp  uint64 // seconds since the epoch
	Commit     []byte // the to-commit object; hashes to Name.To
	CommitMeta object.Metadata
	Parts      []PartHeader
	Fallbacks  []Fallback
	// Inline holds the bytes of parts stored in the superblock itself,
	// by part index.
	Inline map[int][]byte
	// BigEndian reports that the part and fallback sizes were written
	// big-endian (decoded values are always native).
	BigEndian bool
}

func commitMetaKey(n Name) string { return n.Dir() + "/commitmeta" }

func malformedf(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrMalformed)
}

// DecodeSuperblock parses and validates a superblock. It checks the
// structure, that the embedded commit hashes to the target and decodes,
// and that every part and fallback names an object it may create.
func DecodeSuperblock(b []byte) (*Superblock, error) {
	sb, err := decodeSuperblock(b)
	if err != nil {
		if sb != nil && !sb.Name.To.IsZero() {
			return nil, fmt.Errorf("delta %s: superblock: %w", sb.Name, err)
		}
		return nil, fmt.Errorf("delta superblock: %w", err)
	}
	return sb, nil
}

func decodeSuperblock(b []byte) (*Superblock, error) {
	if len(b) > MaxSuperblockSize {
		return nil, malformedf("%d bytes, more than the %d allowed", len(b), MaxSuperblockSize)
	}
	if bytes.HasPrefix(b, signedMagic) {
		return nil, malformedf("signed superblocks (OSTSGNDT) are not supported")
	}
	v, err := gvariant.Unmarshal(SuperblockType, b)
	if err != nil {
		return nil, malformedf("%v", err)
	}
	f := v.([]gvariant.Value)
	sb := &Superblock{Timestamp: bits.ReverseBytes64(f[1].(uint64))} // stored big-endian
	from, to := f[2].([]byte), f[3].([]byte)
	if len(to) != 32 || (len(from) != 0 && len(from) != 32) {
		return nil, malformedf("from/to checksums of %d/%d bytes", len(from), len(to))
	}
	copy(sb.Name.To[:], to)
	copy(sb.Name.From[:], from)
	if len(from) == 32 && sb.Name.From.IsZero() {
		return nil, malformedf("from checksum is all zeros")
	}
	if sb.Commit, err = gvariant.Marshal(object.CommitType, f[4]); err != nil {
		return sb, malformedf("commit: %v", err)
	}
	if got := object.SumMeta(sb.Commit); got != sb.Name.To {
		return sb, malformedf("embedded commit hashes to %s, not the target", got)
	}
	if _, err := object.UnmarshalCommit(sb.Commit); err != nil {
		return sb, malformedf("embedded commit: %v", err)
	}
	if len(f[5].([]byte)) != 0 {
		return sb, malformedf("recursive deltas are not supported")
	}

	// Metadata: pick out the keys with a meaning here.
	meta := object.MetadataFromValue(f[0])
	endian := byte(0)
	hdrs := f[6].([]gvariant.Value)
	partKeys := map[string]int{}
	for i := range hdrs {
		partKeys[PartPath(sb.Name.From, sb.Name.To, i)] = i
	}
	for _, e := range meta {
		switch {
		case e.Key == KeyEndianness:
			y, ok := e.Value.Value.(uint8)
			if !ok || e.Value.Type.String() != "y" {
				return sb, malformedf("%s has type %s, want y", KeyEndianness, e.Value.Type)
			}
			endian = y
		case e.Key == commitMetaKey(sb.Name):
			if e.Value.Type.String() != "a{sv}" {
				return sb, malformedf("detached metadata has type %s, want a{sv}", e.Value.Type)
			}
			sb.CommitMeta = object.MetadataFromValue(e.Value.Value)
		case strings.HasPrefix(e.Key, "deltas/"):
			i, ok := partKeys[e.Key]
			if !ok {
				return sb, malformedf("metadata key %q names no part of this delta", e.Key)
			}
			if e.Value.Type.String() != "(yay)" {
				return sb, malformedf("inline part %d has type %s, want (yay)", i, e.Value.Type)
			}
			raw, err := gvariant.Marshal(PartFileType, e.Value.Value)
			if err != nil {
				return sb, malformedf("inline part %d: %v", i, err)
			}
			if sb.Inline == nil {
				sb.Inline = map[int][]byte{}
			}
			sb.Inline[i] = raw
		default:
			sb.Metadata = append(sb.Metadata, e)
		}
	}
	// The gvariant codec decodes integers little-endian; 'B' data needs a
	// swap.
	var swapped bool
	switch endian {
	case 'l':
	case 'B':
		swapped = true
	case 0:
		swapped = guessSwapped(hdrs)
	default:
		return sb, malformedf("%s is %q, want 'l' or 'B'", KeyEndianness, endian)
	}
	sb.BigEndian = swapped
	fix32 := func(x uint32) uint32 {
		if swapped {
			return bits.ReverseBytes32(x)
		}
		return x
	}
	fix64 := func(x uint64) uint64 {
		if swapped {
			return bits.ReverseBytes64(x)
		}
		return x
	}

	for i, hv := range hdrs {
		h := hv.([]gvariant.Value)
		ph := PartHeader{Version: fix32(h[0].(uint32)), Size: fix64(h[2].(uint64)), USize: fix64(h[3].(uint64))}
		if ph.Version != 0 {
			return sb, malformedf("part %d: version %d is not supported", i, ph.Version)
		}
		sum := h[1].([]byte)
		if len(sum) != 32 {
			return sb, malformedf("part %d: checksum of %d bytes", i, len(sum))
		}
		copy(ph.Checksum[:], sum)
		objs := h[4].([]byte)
		if len(objs)%33 != 0 {
			return sb, malformedf("part %d: object list of %d bytes is not a multiple of 33", i, len(objs))
		}
		for j := 0; j < len(objs); j += 33 {
			n := object.Name{Type: object.Type(objs[j])}
			copy(n.Checksum[:], objs[j+1:j+33])
			switch n.Type {
			case object.TypeFile, object.TypeDirTree, object.TypeDirMeta, object.TypeCommit:
			default:
				return sb, malformedf("part %d: object %d has type %d, which a delta cannot create", i, j/33, n.Type)
			}
			ph.Objects = append(ph.Objects, n)
		}
		if raw, ok := sb.Inline[i]; ok && uint64(len(raw)) != ph.Size {
			return sb, malformedf("inline part %d: %d bytes, header says %d", i, len(raw), ph.Size)
		}
		sb.Parts = append(sb.Parts, ph)
	}
	for i, fv := range f[7].([]gvariant.Value) {
		e := fv.([]gvariant.Value)
		fb := Fallback{Object: object.Name{Type: object.Type(e[0].(uint8))}, Size: fix64(e[2].(uint64)), USize: fix64(e[3].(uint64))}
		if fb.Object.Type != object.TypeFile {
			return sb, malformedf("fallback %d has object type %d; only content objects may fall back", i, fb.Object.Type)
		}
		sum := e[1].([]byte)
		if len(sum) != 32 {
			return sb, malformedf("fallback %d: checksum of %d bytes", i, len(sum))
		}
		copy(fb.Object.Checksum[:], sum)
		sb.Fallbacks = append(sb.Fallbacks, fb)
	}
	return sb, nil
}

// guessSwapped is libostree's rule for superblocks without an endianness
// key: sizes that make no sense natively (a part larger than 1.2 × its
// uncompressed size, or an average object above 4 GiB) mean the other
// byte order.
func guessSwapped(hdrs []gvariant.Value) bool {
	var objs, usize uint64
	for _, hv := range hdrs {
		h := hv.([]gvariant.Value)
		size, us := h[2].(uint64), h[3].(uint64)
		if float64(size) > 1.2*float64(us) {
			return true
		}
		objs += uint64(len(h[4].([]byte)) / 33)
		usize += us
	}
	return objs > 0 && usize/objs > 4<<30
}

// Marshal serializes the superblock: user metadata first (flatpak sniffs
// it), then the endianness marker 'l' with little-endian sizes, the
// inline parts and the target's detached metadata.
func (sb *Superblock) Marshal() ([]byte, error) {
	meta := append(object.Metadata(nil), sb.Metadata...)
	meta.Set(KeyEndianness, gvariant.NewVariant("y", uint8('l')))
	for i := range sb.Parts {
		raw, ok := sb.Inline[i]
		if !ok {
			continue
		}
		if len(raw) < 1 {
			return nil, fmt.Errorf("inline part %d is empty", i)
		}
		meta.Set(PartPath(sb.Name.From, sb.Name.To, i), gvariant.NewVariant("(yay)", []gvariant.Value{raw[0], raw[1:]}))
	}
	if sb.CommitMeta != nil {
		meta.Set(commitMetaKey(sb.Name), gvariant.Variant{Type: object.VarDictType, Value: object.ValueOfMetadata(sb.CommitMeta)})
	}
	commit, err := gvariant.Unmarshal(object.CommitType, sb.Commit)
	if err != nil {
		return nil, fmt.Errorf("delta %s: commit: %w", sb.Name, err)
	}
	var from []byte
	if !sb.Name.From.IsZero() {
		from = sb.Name.From[:]
	}
	// The gvariant codec reads and writes integers little-endian, which
	// is what 'l' declares.
	le64 := func(x uint64) uint64 { return x }
	le32 := func(x uint32) uint32 { return x }
	hdrs := make([]gvariant.Value, len(sb.Parts))
	for i, p := range sb.Parts {
		objs := make([]byte, 0, 33*len(p.Objects))
		for _, o := range p.Objects {
			objs = append(objs, byte(o.Type))
			objs = append(objs, o.Checksum[:]...)
		}
		hdrs[i] = []gvariant.Value{le32(p.Version), append([]byte(nil), p.Checksum[:]...), le64(p.Size), le64(p.USize), objs}
	}
	fbs := make([]gvariant.Value, len(sb.Fallbacks))
	for i, fb := range sb.Fallbacks {
		fbs[i] = []gvariant.Value{uint8(fb.Object.Type), append([]byte(nil), fb.Object.Checksum[:]...), le64(fb.Size), le64(fb.USize)}
	}
	v := []gvariant.Value{
		object.ValueOfMetadata(meta),
		bits.ReverseBytes64(sb.Timestamp),
		from,
		append([]byte(nil), sb.Name.To[:]...),
		commit,
		[]byte{},
		hdrs,
		fbs,
	}
	b, err := gvariant.Marshal(SuperblockType, v)
	if err != nil {
		return nil, fmt.Errorf("delta %s: superblock: %w", sb.Name, err)
	}
	return b, nil
}

// Digest is the SHA-256 of a superblock's bytes, which summaries and
// delta indexes record for each delta.
func Digest(superblock []byte) [32]byte { return sha256.Sum256(superblock) }

// partLabel names a part in errors.
func partLabel(i int) string { return "part " + strconv.Itoa(i) }
