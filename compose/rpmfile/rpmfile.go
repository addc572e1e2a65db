// Package rpmfile reads RPM package files: headers (via
// github.com/cavaliergopher/rpm), OpenPGP header signatures (via
// ProtonMail/go-crypto), scriptlets, and the cpio payload, which it unpacks
// into a tree with owners resolved against the tree's own passwd/group.
package rpmfile

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/cavaliergopher/rpm"

	"github.com/osupdate/os-update/compose/rpmver"
)

// Header and signature tags used here (rpmtag.h numbering).
const (
	sigTagSHA256    = 273
	sigTagDSAHeader = 267
	sigTagRSAHeader = 268
	sigTagPGP       = 1002
	sigTagGPG       = 1005

	tagPreIn        = 1023
	tagPostIn       = 1024
	tagPreInProg    = 1085
	tagPostInProg   = 1086
	tagPostTrans    = 1152
	tagPostTransPrg = 1154
	tagFileModes    = 1030
	tagFileLinkTos  = 1036
	tagFileFlags    = 1037
	tagFileUser     = 1039
	tagFileGroup    = 1040
	tagDirIndexes   = 1116
	tagBaseNames    = 1117
	tagDirNames     = 1118
	tagFileInodes   = 1096
	tagPayloadFmt   = 1124
	tagPayloadComp  = 1125

	tagTriggerScripts    = 1065
	tagTriggerName       = 1066
	tagTriggerVersion    = 1067
	tagTriggerFlags      = 1068
	tagTriggerIndex      = 1069
	tagTriggerScriptProg = 1092

	senseLess      = 1 << 1
	senseGreater   = 1 << 2
	senseEqual     = 1 << 3
	senseTriggerIn = 1 << 16

	tagPayloadDigest     = 5092
	tagPayloadDigestAlgo = 5093
)

// Package is an opened RPM file.
type Package struct {
	*rpm.Package
	path          string
	sigHeader     []byte // lead excluded
	header        []byte // the main header blob, magic included
	payloadOffset int64
}

const maxHeader = 32 << 20

// Open reads the lead and both headers of the RPM at path.
func Open(path string) (*Package, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var prefix bytes.Buffer
	lead := make([]byte, 96)
	if _, err := io.ReadFull(br, lead); err != nil {
		return nil, fmt.Errorf("%s: read lead: %w", path, err)
	}
	if !bytes.Equal(lead[:4], []byte{0xed, 0xab, 0xee, 0xdb}) {
		return nil, fmt.Errorf("%s: not an RPM file", path)
	}
	prefix.Write(lead)
	sig, err := readHeaderBlob(br)
	if err != nil {
		return nil, fmt.Errorf("%s: signature header: %w", path, err)
	}
	prefix.Write(sig)
	if pad := (8 - len(sig)%8) % 8; pad > 0 {
		b := make([]byte, pad)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, fmt.Errorf("%s: signature padding: %w", path, err)
		}
		prefix.Write(b)
	}
	hdr, err := readHeaderBlob(br)
	if err != nil {
		return nil, fmt.Errorf("%s: header: %w", path, err)
	}
	prefix.Write(hdr)
	p, err := rpm.Read(bytes.NewReader(prefix.Bytes()))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Package{Package: p, path: path, sigHeader: sig, header: hdr, payloadOffset: int64(prefix.Len())}, nil
}

// readHeaderBlob reads one header structure (magic, counts, index, data).
func readHeaderBlob(r io.Reader) ([]byte, error) {
	intro := make([]byte, 16)
	if _, err := io.ReadFull(r, intro); err != nil {
		return nil, err
	}
	if !bytes.Equal(intro[:3], []byte{0x8e, 0xad, 0xe8}) {
		return nil, errors.New("bad header magic")
	}
	il := binary.BigEndian.Uint32(intro[8:12])
	dl := binary.BigEndian.Uint32(intro[12:16])
	n := uint64(il)*16 + uint64(dl)
	if n > maxHeader {
		return nil, fmt.Errorf("header of %d bytes is too large", n)
	}
	buf := make([]byte, 16+n)
	copy(buf, intro)
	if _, err := io.ReadFull(r, buf[16:]); err != nil {
		return nil, err
	}
	// The header parser allocates by the counts in the index; bound each
	// entry by the data it can really occupy so a hostile header cannot
	// make it allocate gigabytes.
	for i := uint64(0); i < uint64(il); i++ {
		e := buf[16+16*i:]
		typ := binary.BigEndian.Uint32(e[4:8])
		off := uint64(binary.BigEndian.Uint32(e[8:12]))
		cnt := uint64(binary.BigEndian.Uint32(e[12:16]))
		size, ok := tagTypeSize[typ]
		if !ok {
			return nil, fmt.Errorf("header entry %d: unknown type %d", i, typ)
		}
		if cnt == 0 || off > uint64(dl) || cnt*size > uint64(dl)-off {
			return nil, fmt.Errorf("header entry %d: %d values at offset %d do not fit in %d bytes", i, cnt, off, dl)
		}
		if typ == 6 || typ == 8 || typ == 9 {
			// Every string must end (NUL) inside the data.
			data := buf[16+16*uint64(il):]
			o := off
			for k := uint64(0); k < cnt; k++ {
				end := bytes.IndexByte(data[o:], 0)
				if end < 0 {
					return nil, fmt.Errorf("header entry %d: unterminated string", i)
				}
				o += uint64(end) + 1
			}
		}
	}
	return buf, nil
}

// tagTypeSize is the smallest size of one value of each header type
// (strings take at least their NUL).
var tagTypeSize = map[uint32]uint64{0: 0, 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 1, 9: 1}

// Path is the file the package was opened from.
func (p *Package) Path() string { return p.path }

// NEVRA returns name-[epoch:]version-release.arch.
func (p *Package) NEVRA() string {
	evr := p.Version() + "-" + p.Release()
	if p.Epoch() != 0 {
		evr = fmt.Sprint(p.Epoch()) + ":" + evr
	}
	return p.Name() + "-" + evr + "." + p.Architecture()
}

// VerifyDigest checks the header's SHA-256 digest from the signature
// header, when the package has one.
func (p *Package) VerifyDigest() error {
	want := p.Signature.GetTag(sigTagSHA256).String()
	if want == "" {
		return nil
	}
	got := sha256.Sum256(p.header)
	if hex.EncodeToString(got[:]) != want {
		return fmt.Errorf("%s: header SHA-256 digest mismatch", p.NEVRA())
	}
	return nil
}

// ErrUnsigned is returned by VerifySignature for a package with no
// OpenPGP signature.
var ErrUnsigned = errors.New("package is not signed")

// VerifySignature checks the package's OpenPGP signature against keyring
// and returns the signer's key ID. A header-only signature (what rpm 4.x
// writes) covers the header, which itself carries digests of the payload;
// a legacy header+payload signature is checked over both.
func (p *Package) VerifySignature(keyring openpgp.KeyRing) (uint64, error) {
	if err := p.VerifyDigest(); err != nil {
		return 0, err
	}
	for _, tag := range []int{sigTagRSAHeader, sigTagDSAHeader} {
		if sig := p.Signature.GetTag(tag).Bytes(); sig != nil {
			kid, err := p.check(keyring, bytes.NewReader(p.header), sig)
			if err != nil {
				return 0, err
			}
			// The signed header vouches for the payload only through
			// its payload digest, so that must match too.
			return kid, p.verifyPayloadDigest()
		}
	}
	for _, tag := range []int{sigTagPGP, sigTagGPG} {
		if sig := p.Signature.GetTag(tag).Bytes(); sig != nil {
			f, err := os.Open(p.path)
			if err != nil {
				return 0, err
			}
			defer f.Close()
			if _, err := f.Seek(p.payloadOffset-int64(len(p.header)), io.SeekStart); err != nil {
				return 0, err
			}
			return p.check(keyring, f, sig)
		}
	}
	return 0, fmt.Errorf("%s: %w", p.NEVRA(), ErrUnsigned)
}

// verifyPayloadDigest checks the (compressed) payload against the
// header's PAYLOADDIGEST.
func (p *Package) verifyPayloadDigest() error {
	want := p.Header.GetTag(tagPayloadDigest).String()
	if want == "" {
		return fmt.Errorf("%s: header signature but no payload digest: the payload cannot be verified", p.NEVRA())
	}
	var h hash.Hash
	switch algo := p.Header.GetTag(tagPayloadDigestAlgo).Int64(); algo {
	case 8:
		h = sha256.New()
	case 9:
		h = sha512.New384()
	case 10:
		h = sha512.New()
	default:
		return fmt.Errorf("%s: unsupported payload digest algorithm %d", p.NEVRA(), algo)
	}
	f, err := os.Open(p.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(p.payloadOffset, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("%s: %w", p.NEVRA(), err)
	}
	if hex.EncodeToString(h.Sum(nil)) != strings.ToLower(want) {
		return fmt.Errorf("%s: payload digest mismatch (payload altered after signing)", p.NEVRA())
	}
	return nil
}

func (p *Package) check(keyring openpgp.KeyRing, signed io.Reader, sig []byte) (uint64, error) {
	signer, err := openpgp.CheckDetachedSignature(keyring, signed, bytes.NewReader(sig), nil)
	if err != nil {
		return 0, fmt.Errorf("%s: signature: %w", p.NEVRA(), err)
	}
	return signer.PrimaryKey.KeyId, nil
}

// Script is one scriptlet.
type Script struct {
	Kind    string // "pre", "post", "posttrans"
	Prog    []string
	Body    string
	Package string // NEVRA, for messages
}

// Scripts returns the install-time scriptlets that have a body or a
// program; %preun/%postun never run in a compose.
func (p *Package) Scripts() []Script {
	var out []Script
	for _, s := range []struct {
		kind       string
		body, prog int
	}{{"pre", tagPreIn, tagPreInProg}, {"post", tagPostIn, tagPostInProg}, {"posttrans", tagPostTrans, tagPostTransPrg}} {
		body := p.Header.GetTag(s.body).String()
		prog := p.Header.GetTag(s.prog).StringSlice()
		if body == "" && len(prog) == 0 {
			continue
		}
		if len(prog) == 0 {
			prog = []string{"/bin/sh"}
		}
		out = append(out, Script{Kind: s.kind, Prog: prog, Body: body, Package: p.NEVRA()})
	}
	return out
}

// Trigger is a %triggerin scriptlet: it runs when a package named Name
// (at a version satisfying Flags/Version) is installed with its owner.
type Trigger struct {
	Name    string
	Flags   rpmver.Flags
	Version string // "" when unversioned
	Script  Script
}

// InstallTriggers returns the package's %triggerin scriptlets; other
// trigger kinds never fire in a compose (nothing is removed or upgraded).
func (p *Package) InstallTriggers() []Trigger {
	h := &p.Header
	names := h.GetTag(tagTriggerName).StringSlice()
	versions := h.GetTag(tagTriggerVersion).StringSlice()
	flags := h.GetTag(tagTriggerFlags).Int64Slice()
	index := h.GetTag(tagTriggerIndex).Int64Slice()
	scripts := h.GetTag(tagTriggerScripts).StringSlice()
	progs := h.GetTag(tagTriggerScriptProg).StringSlice()
	var out []Trigger
	for i, name := range names {
		if i >= len(flags) || i >= len(index) || flags[i]&senseTriggerIn == 0 {
			continue
		}
		idx := index[i]
		if idx < 0 || int(idx) >= len(scripts) {
			continue
		}
		t := Trigger{Name: name, Script: Script{Kind: "triggerin", Prog: []string{"/bin/sh"}, Body: scripts[idx], Package: p.NEVRA()}}
		if int(idx) < len(progs) && progs[idx] != "" {
			t.Script.Prog = []string{progs[idx]}
		}
		if i < len(versions) {
			t.Version = versions[i]
		}
		if flags[i]&senseLess != 0 {
			t.Flags |= rpmver.LT
		}
		if flags[i]&senseGreater != 0 {
			t.Flags |= rpmver.GT
		}
		if flags[i]&senseEqual != 0 {
			t.Flags |= rpmver.EQ
		}
		out = append(out, t)
	}
	return out
}

// Matches reports whether the trigger fires for a package.
func (t Trigger) Matches(name string, evr rpmver.EVR) bool {
	if name != t.Name {
		return false
	}
	if t.Flags == 0 || t.Version == "" {
		return true
	}
	want, err := rpmver.Parse(t.Version)
	if err != nil {
		return false
	}
	return rpmver.Satisfies(&evr, t.Flags, want)
}

// File is one entry of the header's file list.
type File struct {
	Path   string // absolute, as in the header
	Mode   uint32 // st_mode
	User   string
	Group  string
	Flags  int64 // rpm.FileFlag*
	Linkto string
	Inode  int64
}

// Config reports a %config file.
func (f File) Config() bool { return f.Flags&rpm.FileFlagConfig != 0 }

// Ghost reports a %ghost file (owned, never in the payload).
func (f File) Ghost() bool { return f.Flags&rpm.FileFlagGhost != 0 }

// Doc reports a %doc file.
func (f File) Doc() bool { return f.Flags&rpm.FileFlagDoc != 0 }

// FileList returns the header's file list.
func (p *Package) FileList() ([]File, error) {
	h := &p.Header
	idx := h.GetTag(tagDirIndexes).Int64Slice()
	base := h.GetTag(tagBaseNames).StringSlice()
	dirs := h.GetTag(tagDirNames).StringSlice()
	modes := h.GetTag(tagFileModes).Int64Slice()
	flags := h.GetTag(tagFileFlags).Int64Slice()
	users := h.GetTag(tagFileUser).StringSlice()
	groups := h.GetTag(tagFileGroup).StringSlice()
	links := h.GetTag(tagFileLinkTos).StringSlice()
	inodes := h.GetTag(tagFileInodes).Int64Slice()
	n := len(base)
	if len(idx) != n || len(modes) != n || len(users) != n || len(groups) != n {
		return nil, fmt.Errorf("%s: inconsistent file list in header", p.NEVRA())
	}
	out := make([]File, n)
	for i := range base {
		if idx[i] < 0 || int(idx[i]) >= len(dirs) {
			return nil, fmt.Errorf("%s: bad directory index in header", p.NEVRA())
		}
		f := File{Path: dirs[idx[i]] + base[i], Mode: uint32(modes[i]) & 0xffff, User: users[i], Group: groups[i]}
		if i < len(flags) {
			f.Flags = flags[i]
		}
		if i < len(links) {
			f.Linkto = links[i]
		}
		if i < len(inodes) {
			f.Inode = inodes[i]
		}
		out[i] = f
	}
	return out, nil
}
