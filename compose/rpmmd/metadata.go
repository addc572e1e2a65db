package rpmmd

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/osupdate/os-update/compose/rpmver"
)

// Dep is one dependency entry (provides, requires, ...). A name starting
// with '(' is a rich (boolean) dependency.
type Dep struct {
	Name  string
	Flags rpmver.Flags
	EVR   rpmver.EVR
	Pre   bool
}

func (d Dep) String() string {
	if d.Flags == 0 {
		return d.Name
	}
	return d.Name + " " + d.Flags.String() + " " + d.EVR.String()
}

// Package is one package entry of a repository.
type Package struct {
	Name       string
	Arch       string
	EVR        rpmver.EVR
	Checksum   Checksum
	Location   string
	Size       int64 // of the .rpm file
	BuildTime  int64
	SourceRPM  string
	Provides   []Dep
	Requires   []Dep
	Conflicts  []Dep
	Obsoletes  []Dep
	Recommends []Dep
	Files      []string // from filelists (all files), or primary's subset
	Repo       *Repo
}

// NEVRA returns name-[epoch:]version-release.arch.
func (p *Package) NEVRA() string { return p.Name + "-" + p.EVR.String() + "." + p.Arch }

// URL returns where the package file is.
func (p *Package) URL() string { return p.Repo.Config.BaseURL + "/" + p.Location }

// Repo is a loaded repository.
type Repo struct {
	Config   RepoConfig
	Revision string   // repomd revision
	Repomd   Checksum // sha256 of repomd.xml, identifies the metadata
	Packages []*Package
	Keyring  openpgp.EntityList // from gpgkey, when gpgcheck is on
}

// Maximum sizes of downloaded metadata; protects against hostile servers.
const (
	maxRepomd   = 4 << 20
	maxMetadata = 2 << 30
)

type repomdXML struct {
	Revision string `xml:"revision"`
	Data     []struct {
		Type     string `xml:"type,attr"`
		Checksum struct {
			Type  string `xml:"type,attr"`
			Value string `xml:",chardata"`
		} `xml:"checksum"`
		Location struct {
			Href string `xml:"href,attr"`
		} `xml:"location"`
	} `xml:"data"`
}

// Load fetches and parses a repository's metadata, using cacheDir to keep
// downloaded files by checksum.
func Load(ctx context.Context, f *Fetcher, cfg RepoConfig, cacheDir string) (*Repo, error) {
	base := cfg.BaseURL
	repomdBytes, err := f.ReadAll(ctx, base+"/repodata/repomd.xml", maxRepomd)
	if err != nil {
		return nil, fmt.Errorf("repo %s: %w", cfg.ID, err)
	}
	r := &Repo{Config: cfg}
	if cfg.GPGCheck || cfg.RepoGPGCheck {
		for _, k := range cfg.GPGKeys {
			kb, err := f.ReadAll(ctx, k, 1<<20)
			if err != nil {
				return nil, fmt.Errorf("repo %s: gpgkey: %w", cfg.ID, err)
			}
			el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(kb))
			if err != nil {
				el, err = openpgp.ReadKeyRing(bytes.NewReader(kb))
			}
			if err != nil {
				return nil, fmt.Errorf("repo %s: gpgkey %s: %w", cfg.ID, k, err)
			}
			r.Keyring = append(r.Keyring, el...)
		}
	}
	if cfg.RepoGPGCheck {
		sig, err := f.ReadAll(ctx, base+"/repodata/repomd.xml.asc", 1<<20)
		if err != nil {
			return nil, fmt.Errorf("repo %s: repo_gpgcheck: %w", cfg.ID, err)
		}
		if _, err := openpgp.CheckArmoredDetachedSignature(r.Keyring, bytes.NewReader(repomdBytes), bytes.NewReader(sig), nil); err != nil {
			return nil, fmt.Errorf("repo %s: repomd.xml signature: %w", cfg.ID, err)
		}
	}
	sum := Checksum{Type: "sha256"}
	h, _ := sum.NewHash()
	h.Write(repomdBytes)
	sum.Hex = fmt.Sprintf("%x", h.Sum(nil))
	r.Repomd = sum
	var md repomdXML
	if err := xml.Unmarshal(repomdBytes, &md); err != nil {
		return nil, fmt.Errorf("repo %s: repomd.xml: %w", cfg.ID, err)
	}
	r.Revision = md.Revision
	locs := map[string]struct {
		href string
		sum  Checksum
	}{}
	for _, d := range md.Data {
		locs[d.Type] = struct {
			href string
			sum  Checksum
		}{d.Location.Href, Checksum{Type: d.Checksum.Type, Hex: strings.TrimSpace(d.Checksum.Value)}}
	}
	prim, ok := locs["primary"]
	if !ok {
		return nil, fmt.Errorf("repo %s: repomd.xml lists no primary metadata", cfg.ID)
	}
	mdCache := filepath.Join(cacheDir, "repodata")
	open := func(kind string, l struct {
		href string
		sum  Checksum
	}) (io.ReadCloser, error) {
		if strings.Contains(l.href, "..") {
			return nil, fmt.Errorf("repo %s: %s location %q escapes the repository", cfg.ID, kind, l.href)
		}
		p, err := f.Download(ctx, base+"/"+l.href, l.sum, mdCache, compressionSuffix(l.href))
		if err != nil {
			return nil, fmt.Errorf("repo %s: %s: %w", cfg.ID, kind, err)
		}
		fh, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		rc, err := decompress(fh, l.href)
		if err != nil {
			fh.Close()
			return nil, fmt.Errorf("repo %s: %s: %w", cfg.ID, kind, err)
		}
		return rc, nil
	}
	pr, err := open("primary", prim)
	if err != nil {
		return nil, err
	}
	pkgs, err := ParsePrimary(io.LimitReader(pr, maxMetadata))
	pr.Close()
	if err != nil {
		return nil, fmt.Errorf("repo %s: primary: %w", cfg.ID, err)
	}
	for _, p := range pkgs {
		p.Repo = r
	}
	r.Packages = pkgs
	if fl, ok := locs["filelists"]; ok {
		fr, err := open("filelists", fl)
		if err != nil {
			return nil, err
		}
		err = ParseFilelists(io.LimitReader(fr, maxMetadata), pkgs)
		fr.Close()
		if err != nil {
			return nil, fmt.Errorf("repo %s: filelists: %w", cfg.ID, err)
		}
	}
	return r, nil
}

func compressionSuffix(href string) string {
	for _, s := range []string{".gz", ".xz", ".zst", ".bz2"} {
		if strings.HasSuffix(href, s) {
			return s
		}
	}
	return ""
}

type multiCloser struct {
	io.Reader
	closers []io.Closer
}

func (m *multiCloser) Close() error {
	var first error
	for _, c := range m.closers {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// decompress picks the decompressor by file name, as rpm-md does.
func decompress(rc io.ReadCloser, name string) (io.ReadCloser, error) {
	switch compressionSuffix(name) {
	case ".gz":
		z, err := gzip.NewReader(rc)
		if err != nil {
			return nil, err
		}
		return &multiCloser{z, []io.Closer{z, rc}}, nil
	case ".xz":
		z, err := xz.NewReader(rc)
		if err != nil {
			return nil, err
		}
		return &multiCloser{z, []io.Closer{rc}}, nil
	case ".zst":
		z, err := zstd.NewReader(rc)
		if err != nil {
			return nil, err
		}
		return &multiCloser{z, []io.Closer{closerFunc(func() error { z.Close(); return nil }), rc}}, nil
	case ".bz2":
		return &multiCloser{bzip2.NewReader(rc), []io.Closer{rc}}, nil
	}
	return rc, nil
}

type closerFunc func() error

func (c closerFunc) Close() error { return c() }

type xmlEntry struct {
	Name  string `xml:"name,attr"`
	Flags string `xml:"flags,attr"`
	Epoch string `xml:"epoch,attr"`
	Ver   string `xml:"ver,attr"`
	Rel   string `xml:"rel,attr"`
	Pre   string `xml:"pre,attr"`
}

type xmlEntries struct {
	Entries []xmlEntry `xml:"entry"`
}

type xmlVersion struct {
	Epoch string `xml:"epoch,attr"`
	Ver   string `xml:"ver,attr"`
	Rel   string `xml:"rel,attr"`
}

type xmlPackage struct {
	Type     string     `xml:"type,attr"`
	Name     string     `xml:"name"`
	Arch     string     `xml:"arch"`
	Version  xmlVersion `xml:"version"`
	Checksum struct {
		Type  string `xml:"type,attr"`
		Value string `xml:",chardata"`
	} `xml:"checksum"`
	Time struct {
		Build string `xml:"build,attr"`
	} `xml:"time"`
	Size struct {
		Package string `xml:"package,attr"`
	} `xml:"size"`
	Location struct {
		Href string `xml:"href,attr"`
	} `xml:"location"`
	Format struct {
		SourceRPM  string     `xml:"sourcerpm"`
		Provides   xmlEntries `xml:"provides"`
		Requires   xmlEntries `xml:"requires"`
		Conflicts  xmlEntries `xml:"conflicts"`
		Obsoletes  xmlEntries `xml:"obsoletes"`
		Recommends xmlEntries `xml:"recommends"`
		Files      []string   `xml:"file"`
	} `xml:"format"`
}

func parseEVR(v xmlVersion) (rpmver.EVR, error) {
	e := rpmver.EVR{Version: v.Ver, Release: v.Rel}
	if v.Epoch != "" {
		n, err := strconv.Atoi(v.Epoch)
		if err != nil || n < 0 {
			return e, fmt.Errorf("bad epoch %q", v.Epoch)
		}
		e.Epoch = n
	}
	return e, nil
}

func convertDeps(es xmlEntries) ([]Dep, error) {
	out := make([]Dep, 0, len(es.Entries))
	for _, e := range es.Entries {
		if e.Name == "" {
			return nil, fmt.Errorf("dependency entry without a name")
		}
		fl, err := rpmver.ParseFlags(e.Flags)
		if err != nil {
			return nil, fmt.Errorf("dependency %s: %w", e.Name, err)
		}
		d := Dep{Name: e.Name, Flags: fl, Pre: e.Pre == "1"}
		if fl != 0 {
			if d.EVR, err = parseEVR(xmlVersion{e.Epoch, e.Ver, e.Rel}); err != nil {
				return nil, fmt.Errorf("dependency %s: %w", e.Name, err)
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// ParsePrimary parses primary.xml (uncompressed).
func ParsePrimary(r io.Reader) ([]*Package, error) {
	dec := xml.NewDecoder(r)
	var out []*Package
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "package" {
			continue
		}
		var xp xmlPackage
		if err := dec.DecodeElement(&xp, &se); err != nil {
			return nil, err
		}
		if xp.Type != "" && xp.Type != "rpm" {
			continue
		}
		p, err := convertPackage(&xp)
		if err != nil {
			return nil, fmt.Errorf("package %q: %w", xp.Name, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func convertPackage(xp *xmlPackage) (*Package, error) {
	if xp.Name == "" || xp.Arch == "" || xp.Version.Ver == "" {
		return nil, fmt.Errorf("missing name, arch or version")
	}
	loc := xp.Location.Href
	if loc == "" || strings.HasPrefix(loc, "/") || strings.Contains(loc, "..") || strings.Contains(loc, "://") {
		return nil, fmt.Errorf("bad location %q", loc)
	}
	evr, err := parseEVR(xp.Version)
	if err != nil {
		return nil, err
	}
	p := &Package{
		Name: xp.Name, Arch: xp.Arch, EVR: evr, Location: loc,
		Checksum:  Checksum{Type: xp.Checksum.Type, Hex: strings.ToLower(strings.TrimSpace(xp.Checksum.Value))},
		SourceRPM: xp.Format.SourceRPM, Files: xp.Format.Files,
	}
	if _, err := p.Checksum.NewHash(); err != nil {
		return nil, err
	}
	p.Size, _ = strconv.ParseInt(xp.Size.Package, 10, 64)
	p.BuildTime, _ = strconv.ParseInt(xp.Time.Build, 10, 64)
	for _, x := range []struct {
		dst *[]Dep
		src xmlEntries
	}{{&p.Provides, xp.Format.Provides}, {&p.Requires, xp.Format.Requires}, {&p.Conflicts, xp.Format.Conflicts},
		{&p.Obsoletes, xp.Format.Obsoletes}, {&p.Recommends, xp.Format.Recommends}} {
		if *x.dst, err = convertDeps(x.src); err != nil {
			return nil, err
		}
	}
	return p, nil
}

type xmlFilelist struct {
	PkgID   string     `xml:"pkgid,attr"`
	Name    string     `xml:"name,attr"`
	Arch    string     `xml:"arch,attr"`
	Version xmlVersion `xml:"version"`
	Files   []string   `xml:"file"`
}

// ParseFilelists adds the complete file lists to pkgs, matched by pkgid
// (the package checksum).
func ParseFilelists(r io.Reader, pkgs []*Package) error {
	byID := make(map[string]*Package, len(pkgs))
	for _, p := range pkgs {
		byID[p.Checksum.Hex] = p
	}
	dec := xml.NewDecoder(r)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "package" {
			continue
		}
		var fl xmlFilelist
		if err := dec.DecodeElement(&fl, &se); err != nil {
			return err
		}
		if p := byID[strings.ToLower(fl.PkgID)]; p != nil {
			p.Files = fl.Files
		}
	}
}
