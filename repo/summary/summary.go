// Package summary reads and writes the OSTree summary file: the signed
// index of a repository's refs and static deltas that pulls start from.
//
// The format is libostree's (a(s(taya{sv}))a{sv}): refs sorted by strcmp
// (clients binary-search them), the commit size in host (little-endian)
// order, the per-ref timestamp big-endian; the additional metadata holds
// the repository mode, last-modified time, tombstone flag, the static delta
// list (hex names mapped to the SHA-256 of each superblock) and the
// indexed-deltas flag.
package summary

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/osupdate/os-update/internal/fsutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/sign"
)

// MaxSize bounds a summary (and a summary.sig) read from anywhere.
const MaxSize = repo.MaxMetadataSize

// Metadata keys of the summary and its ref entries.
const (
	KeyCommitTimestamp   = "ostree.commit.timestamp"
	KeyCommitVersion     = "ostree.commit.version"
	KeyStaticDeltas      = "ostree.static-deltas"
	KeyLastModified      = "ostree.summary.last-modified"
	KeyExpires           = "ostree.summary.expires"
	KeyMode              = "ostree.summary.mode"
	KeyTombstoneCommits  = "ostree.summary.tombstone-commits"
	KeyIndexedDeltas     = "ostree.summary.indexed-deltas"
	KeyCollectionID      = "ostree.summary.collection-id"
	KeyCollectionMap     = "ostree.summary.collection-map"
	summaryTypeString    = "(a(s(taya{sv}))a{sv})"
	deltaIndexTypeString = "a{sv}"
)

var summaryType = gvariant.MustParseType(summaryTypeString)

// Ref is one entry of the summary's ref list.
type Ref struct {
	Name       string
	CommitSize uint64
	Commit     object.Checksum
	Metadata   object.Metadata
}

// Timestamp returns the commit timestamp recorded for the ref (0 if none).
func (r Ref) Timestamp() uint64 {
	v, ok := r.Metadata.Get(KeyCommitTimestamp)
	if !ok {
		return 0
	}
	t, _ := v.Value.(uint64)
	return bits.ReverseBytes64(t)
}

// Version returns the commit version recorded for the ref.
func (r Ref) Version() string { return r.Metadata.String(KeyCommitVersion) }

// Summary is a decoded summary file.
type Summary struct {
	Refs     []Ref // sorted by name
	Metadata object.Metadata
}

// Lookup finds a ref by name.
func (s *Summary) Lookup(name string) (Ref, bool) {
	i := sort.Search(len(s.Refs), func(i int) bool { return s.Refs[i].Name >= name })
	if i < len(s.Refs) && s.Refs[i].Name == name {
		return s.Refs[i], true
	}
	return Ref{}, false
}

// Mode returns ostree.summary.mode ("" when absent).
func (s *Summary) Mode() string { return s.Metadata.String(KeyMode) }

// Delta is one static delta the summary advertises.
type Delta struct {
	From, To   object.Checksum // From is zero for a delta from nothing
	Superblock object.Checksum // SHA-256 of the superblock file
}

// Name returns the hex name used in summaries: "FROM-TO" or "TO".
func (d Delta) Name() string {
	if d.From.IsZero() {
		return d.To.String()
	}
	return d.From.String() + "-" + d.To.String()
}

// Deltas returns the static deltas listed in the summary.
func (s *Summary) Deltas() ([]Delta, error) {
	v, ok := s.Metadata.Get(KeyStaticDeltas)
	if !ok {
		return nil, nil
	}
	return parseDeltaDict(v)
}

func parseDeltaDict(v gvariant.Variant) ([]Delta, error) {
	if v.Type == nil || v.Type.String() != "a{sv}" {
		return nil, fmt.Errorf("%s: type %v, want a{sv}", KeyStaticDeltas, v.Type)
	}
	var out []Delta
	for _, e := range object.MetadataFromValue(v.Value) {
		d, err := ParseDeltaName(e.Key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", KeyStaticDeltas, err)
		}
		b, ok := e.Value.Value.([]byte)
		if !ok || e.Value.Type.String() != "ay" || len(b) != 32 {
			return nil, fmt.Errorf("%s: %s: digest is not 32 bytes", KeyStaticDeltas, e.Key)
		}
		copy(d.Superblock[:], b)
		out = append(out, d)
	}
	return out, nil
}

// ParseDeltaName parses a hex delta name, "FROM-TO" or "TO".
func ParseDeltaName(name string) (Delta, error) {
	var d Delta
	from, to, ok := strings.Cut(name, "-")
	if !ok {
		from, to = "", name
	}
	var err error
	if d.To, err = object.ParseChecksum(to); err != nil {
		return d, fmt.Errorf("delta name %q: %w", name, err)
	}
	if ok {
		if d.From, err = object.ParseChecksum(from); err != nil {
			return d, fmt.Errorf("delta name %q: %w", name, err)
		}
	}
	return d, nil
}

// Parse decodes a summary strictly: normal form, sorted unique ref names,
// valid checksums and well-typed known keys.
func Parse(data []byte) (*Summary, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("summary: %d bytes exceeds the %d byte limit", len(data), MaxSize)
	}
	v, err := gvariant.Unmarshal(summaryType, data)
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	top := v.([]gvariant.Value)
	s := &Summary{Metadata: object.MetadataFromValue(top[1])}
	for i, rv := range top[0].([]gvariant.Value) {
		entry := rv.([]gvariant.Value)
		inner := entry[1].([]gvariant.Value)
		ref := Ref{Name: entry[0].(string), CommitSize: inner[0].(uint64), Metadata: object.MetadataFromValue(inner[2])}
		if ref.Commit, err = object.ChecksumFromBytes(inner[1].([]byte)); err != nil {
			return nil, fmt.Errorf("summary: ref %q: %w", ref.Name, err)
		}
		if err := repo.ValidateRef(ref.Name); err != nil {
			return nil, fmt.Errorf("summary: ref %q: %w", ref.Name, err)
		}
		if i > 0 && s.Refs[i-1].Name >= ref.Name {
			return nil, fmt.Errorf("summary: refs not sorted at %q", ref.Name)
		}
		if tv, ok := ref.Metadata.Get(KeyCommitTimestamp); ok && tv.Type.String() != "t" {
			return nil, fmt.Errorf("summary: ref %q: %s has type %s", ref.Name, KeyCommitTimestamp, tv.Type)
		}
		s.Refs = append(s.Refs, ref)
	}
	if mv, ok := s.Metadata.Get(KeyMode); ok && mv.Type.String() != "s" {
		return nil, fmt.Errorf("summary: %s has type %s", KeyMode, mv.Type)
	}
	if _, err := s.Deltas(); err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	return s, nil
}

// Marshal serializes the summary; refs are sorted first.
func (s *Summary) Marshal() ([]byte, error) {
	sort.Slice(s.Refs, func(i, j int) bool { return s.Refs[i].Name < s.Refs[j].Name })
	refs := make([]gvariant.Value, len(s.Refs))
	for i, r := range s.Refs {
		if i > 0 && s.Refs[i-1].Name == r.Name {
			return nil, fmt.Errorf("summary: duplicate ref %q", r.Name)
		}
		refs[i] = []gvariant.Value{r.Name, []gvariant.Value{r.CommitSize, r.Commit[:], object.ValueOfMetadata(r.Metadata)}}
	}
	return gvariant.Marshal(summaryType, []gvariant.Value{refs, object.ValueOfMetadata(s.Metadata)})
}

// Options controls Generate and Update.
type Options struct {
	Now time.Time // last-modified time; zero: now
	// Signers sign the new summary into summary.sig.
	Signers []sign.Signer
	// Metadata is added to the summary's metadata (`ostree summary -m`).
	Metadata object.Metadata
}

// Generate builds the summary of a repository: its local refs (never
// remote-tracking ones) and the static deltas under deltas/.
func Generate(r *repo.Repo, opts Options) (*Summary, error) {
	refs, err := r.ListRefs()
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	s := &Summary{}
	for _, ref := range refs {
		if ref.Remote != "" {
			continue
		}
		data, err := r.ReadMeta(object.TypeCommit, ref.Commit)
		if err != nil {
			return nil, fmt.Errorf("summary: ref %s: %w", ref.Name, err)
		}
		c, err := object.UnmarshalCommit(data)
		if err != nil {
			return nil, fmt.Errorf("summary: ref %s: commit %s: %w", ref.Name, ref.Commit, err)
		}
		var m object.Metadata
		if v := c.Version(); v != "" {
			m.Set(KeyCommitVersion, gvariant.NewVariant("s", v))
		}
		m.Set(KeyCommitTimestamp, gvariant.NewVariant("t", bits.ReverseBytes64(c.Timestamp)))
		s.Refs = append(s.Refs, Ref{Name: ref.Name, CommitSize: uint64(len(data)), Commit: ref.Commit, Metadata: m})
	}
	sort.Slice(s.Refs, func(i, j int) bool { return s.Refs[i].Name < s.Refs[j].Name })

	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	mode, _ := r.Config().Get("core", "mode")
	if mode == "" {
		mode = r.Mode().String()
	}
	tomb, _ := r.Config().Bool("core", "tombstone-commits", false)
	s.Metadata.Set(KeyMode, gvariant.NewVariant("s", mode))
	s.Metadata.Set(KeyLastModified, gvariant.NewVariant("t", bits.ReverseBytes64(uint64(now.Unix()))))
	s.Metadata.Set(KeyTombstoneCommits, gvariant.NewVariant("b", tomb))
	deltas, err := ScanDeltas(r.Path())
	if err != nil {
		return nil, err
	}
	if len(deltas) > 0 {
		s.Metadata.Set(KeyStaticDeltas, deltaDict(deltas))
	}
	s.Metadata.Set(KeyIndexedDeltas, gvariant.NewVariant("b", true))
	for _, kv := range opts.Metadata {
		s.Metadata.Set(kv.Key, kv.Value)
	}
	return s, nil
}

func deltaDict(deltas []Delta) gvariant.Variant {
	var m object.Metadata
	for _, d := range deltas {
		sb := d.Superblock
		m.Set(d.Name(), gvariant.NewVariant("ay", sb[:]))
	}
	return gvariant.NewVariant("a{sv}", object.ValueOfMetadata(m))
}

// EncodeDeltaPart is libostree's "modified base64" of a checksum: standard
// base64 without the trailing '=', with '/' replaced by '_'.
func EncodeDeltaPart(c object.Checksum) string {
	s := strings.TrimRight(base64.StdEncoding.EncodeToString(c[:]), "=")
	return strings.ReplaceAll(s, "/", "_")
}

// DecodeDeltaPart reverses EncodeDeltaPart.
func DecodeDeltaPart(s string) (object.Checksum, error) {
	var c object.Checksum
	if len(s) != 43 {
		return c, fmt.Errorf("delta name part %q: length %d, want 43", s, len(s))
	}
	b, err := base64.StdEncoding.Strict().DecodeString(strings.ReplaceAll(s, "_", "/") + "=")
	if err != nil || len(b) != 32 {
		return c, fmt.Errorf("delta name part %q: not modified base64 of a checksum", s)
	}
	copy(c[:], b)
	return c, nil
}

// DeltaDir returns the directory of a delta relative to the repository:
// deltas/FF/FFF…-TTT… or deltas/TT/TTT… for a delta from nothing.
func DeltaDir(from, to object.Checksum) string {
	t := EncodeDeltaPart(to)
	if from.IsZero() {
		return "deltas/" + t[:2] + "/" + t[2:]
	}
	f := EncodeDeltaPart(from)
	return "deltas/" + f[:2] + "/" + f[2:] + "-" + t
}

// DeltaIndexPath returns the delta index path for a target commit.
func DeltaIndexPath(to object.Checksum) string {
	t := EncodeDeltaPart(to)
	return "delta-indexes/" + t[:2] + "/" + t[2:] + ".index"
}

// ScanDeltas lists the deltas under repoPath/deltas that have a
// superblock, with the SHA-256 of each superblock, sorted by name.
func ScanDeltas(repoPath string) ([]Delta, error) {
	base := filepath.Join(repoPath, "deltas")
	tops, err := os.ReadDir(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("scan deltas: %w", err)
	}
	var out []Delta
	for _, top := range tops {
		if !top.IsDir() || len(top.Name()) != 2 {
			continue
		}
		subs, err := os.ReadDir(filepath.Join(base, top.Name()))
		if err != nil {
			return nil, fmt.Errorf("scan deltas: %w", err)
		}
		for _, sub := range subs {
			if !sub.IsDir() {
				continue
			}
			name := top.Name() + sub.Name()
			var d Delta
			fromPart, toPart, hasFrom := strings.Cut(name, "-")
			if !hasFrom {
				fromPart, toPart = "", name
			}
			if d.To, err = DecodeDeltaPart(toPart); err != nil {
				continue // not a delta directory
			}
			if hasFrom {
				if d.From, err = DecodeDeltaPart(fromPart); err != nil {
					continue
				}
			}
			sb, err := os.Open(filepath.Join(base, top.Name(), sub.Name(), "superblock"))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("scan deltas: %w", err)
			}
			h := sha256.New()
			_, err = io.Copy(h, sb)
			sb.Close()
			if err != nil {
				return nil, fmt.Errorf("scan deltas: %s: %w", name, err)
			}
			copy(d.Superblock[:], h.Sum(nil))
			out = append(out, d)
		}
	}
	// libostree's order comes from a hash table and carries no meaning;
	// name order keeps our output reproducible.
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// Update regenerates the summary and delta indexes of a repository and
// replaces summary and summary.sig atomically. The old summary.sig is
// removed first, so a reader never pairs a new summary with an old
// signature; if signers are given, the new one is written after the summary.
func Update(r *repo.Repo, opts Options) (*Summary, error) {
	s, err := Generate(r, opts)
	if err != nil {
		return nil, err
	}
	data, err := s.Marshal()
	if err != nil {
		return nil, err
	}
	// Sign before touching anything, so a signing failure changes nothing.
	var sig []byte
	if len(opts.Signers) > 0 {
		var m object.Metadata
		for _, sg := range opts.Signers {
			if err := sign.Append(&m, data, sg); err != nil {
				return nil, fmt.Errorf("sign summary: %w", err)
			}
		}
		if sig, err = object.MarshalMetadata(m); err != nil {
			return nil, err
		}
	}
	if err := writeDeltaIndexes(r.Path(), s); err != nil {
		return nil, err
	}
	sigPath := filepath.Join(r.Path(), "summary.sig")
	if err := os.Remove(sigPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("summary: %w", err)
	}
	if err := WriteFileAtomic(filepath.Join(r.Path(), "summary"), data); err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	if sig != nil {
		if err := WriteFileAtomic(sigPath, sig); err != nil {
			return nil, fmt.Errorf("summary.sig: %w", err)
		}
	}
	if v, _ := r.Config().Bool("core", "indexed-deltas", false); !v {
		r.Config().SetBool("core", "indexed-deltas", true)
		if err := r.WriteConfig(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Sign adds signatures to an existing summary's summary.sig.
func Sign(r *repo.Repo, signers ...sign.Signer) error {
	data, err := os.ReadFile(filepath.Join(r.Path(), "summary"))
	if err != nil {
		return fmt.Errorf("sign summary: %w", err)
	}
	sigPath := filepath.Join(r.Path(), "summary.sig")
	var m object.Metadata
	if old, err := os.ReadFile(sigPath); err == nil {
		if m, err = object.UnmarshalMetadata(old); err != nil {
			return fmt.Errorf("summary.sig: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, sg := range signers {
		if err := sign.Append(&m, data, sg); err != nil {
			return fmt.Errorf("sign summary: %w", err)
		}
	}
	sig, err := object.MarshalMetadata(m)
	if err != nil {
		return err
	}
	return WriteFileAtomic(sigPath, sig)
}

// writeDeltaIndexes writes delta-indexes/ for every target commit that has
// deltas, and removes indexes of targets that have none any more.
func writeDeltaIndexes(repoPath string, s *Summary) error {
	deltas, err := s.Deltas()
	if err != nil {
		return err
	}
	byTo := map[object.Checksum][]Delta{}
	for _, d := range deltas {
		byTo[d.To] = append(byTo[d.To], d)
	}
	want := map[string]bool{}
	for to, ds := range byTo {
		var m object.Metadata
		m.Set(KeyStaticDeltas, deltaDict(ds))
		b, err := object.MarshalMetadata(m)
		if err != nil {
			return err
		}
		rel := DeltaIndexPath(to)
		want[rel] = true
		p := filepath.Join(repoPath, rel)
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, b) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("delta index: %w", err)
		}
		if err := WriteFileAtomic(p, b); err != nil {
			return fmt.Errorf("delta index: %w", err)
		}
	}
	base := filepath.Join(repoPath, "delta-indexes")
	return filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() && strings.HasSuffix(p, ".index") {
			rel, _ := filepath.Rel(repoPath, p)
			if !want[filepath.ToSlash(rel)] {
				return os.Remove(p)
			}
		}
		return nil
	})
}

// WriteFileAtomic replaces path with data durably (see fsutil).
func WriteFileAtomic(path string, data []byte) error {
	return fsutil.WriteFileAtomic(path, data, 0o644, true)
}

// ParseDeltaIndex decodes a delta-indexes/….index file.
func ParseDeltaIndex(data []byte) ([]Delta, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("delta index: too large")
	}
	m, err := object.UnmarshalMetadata(data)
	if err != nil {
		return nil, fmt.Errorf("delta index: %w", err)
	}
	v, ok := m.Get(KeyStaticDeltas)
	if !ok {
		return nil, nil
	}
	return parseDeltaDict(v)
}
