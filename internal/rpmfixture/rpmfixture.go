// Package rpmfixture builds real RPM packages and repositories for tests,
// with rpmbuild (from spec files written here), gpg + rpmsign, and
// createrepo_c.
package rpmfixture

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
)

// Spec describes one package; it becomes a spec file.
type Spec struct {
	Name, Version, Release string
	Epoch                  int
	Arch                   string // default noarch
	Requires, Provides     []string
	Conflicts, Obsoletes   []string
	Recommends             []string
	PreReq                 []string          // Requires(pre)
	Files                  map[string]string // path → content, mode 0644
	Exec                   map[string]string // path → content, mode 0755
	Config                 []string          // paths of Files that are %config(noreplace)
	Docs                   []string          // paths of Files that are %doc
	Dirs                   []string
	Symlinks               map[string]string // path → target
	Hardlinks              map[string]string // new path → existing path
	Ghost                  []string
	Attr                   map[string]string // path → "mode,user,group" (%attr)
	Pre, Post, PostTrans   string
	Triggers               []string // raw sections, e.g. "%triggerin -- pkg >= 1\nbody"
	ExtraInstall           string   // raw shell for %install
	ExtraFiles             []string // raw %files lines
	Compress               string   // xz, zstd or gzip (default: rpmbuild's)
	NoAutoReqProv          bool
}

// Env is a place to build packages, with a signing key.
type Env struct {
	Dir       string
	GNUPGHOME string
	KeyName   string
	PubKey    string // armored public key file
}

// SourceDateEpoch is the fixed build time of every fixture package.
const SourceDateEpoch = "1700000000"

// NewEnv prepares a build directory (and a gpg key when sign is set).
func NewEnv(t testing.TB, dir string, sign bool) *Env {
	t.Helper()
	testutil.RequireTool(t, "rpmbuild")
	testutil.RequireTool(t, "createrepo_c")
	e := &Env{Dir: dir}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if sign {
		testutil.RequireTool(t, "gpg")
		testutil.RequireTool(t, "rpmsign")
		e.GNUPGHOME = filepath.Join(dir, "gnupg")
		e.KeyName = "Fixture Signer"
		os.MkdirAll(e.GNUPGHOME, 0o700)
		batch := filepath.Join(dir, "key.batch")
		os.WriteFile(batch, []byte("%no-protection\nKey-Type: RSA\nKey-Length: 2048\nName-Real: "+e.KeyName+
			"\nName-Email: fixture@example.com\nExpire-Date: 0\n%commit\n"), 0o600)
		e.gpg(t, "--batch", "--gen-key", batch)
		e.PubKey = filepath.Join(dir, "RPM-GPG-KEY-fixture")
		e.gpg(t, "--batch", "--armor", "--output", e.PubKey, "--export", e.KeyName)
	}
	return e
}

func (e *Env) gpg(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command("gpg", args...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+e.GNUPGHOME)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gpg %v: %v\n%s", args, err, out)
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// SpecText renders the spec file.
func (s *Spec) SpecText() string {
	var b strings.Builder
	w := func(f string, a ...any) { fmt.Fprintf(&b, f+"\n", a...) }
	arch := s.Arch
	if arch == "" {
		arch = "noarch"
	}
	rel := s.Release
	if rel == "" {
		rel = "1"
	}
	w("Name: %s\nVersion: %s\nRelease: %s\nSummary: fixture %s\nLicense: MIT\nBuildArch: %s", s.Name, s.Version, rel, s.Name, arch)
	if s.Epoch != 0 {
		w("Epoch: %d", s.Epoch)
	}
	if s.NoAutoReqProv {
		w("AutoReqProv: no")
	}
	for _, l := range []struct {
		tag  string
		vals []string
	}{{"Requires", s.Requires}, {"Requires(pre)", s.PreReq}, {"Provides", s.Provides}, {"Conflicts", s.Conflicts},
		{"Obsoletes", s.Obsoletes}, {"Recommends", s.Recommends}} {
		for _, v := range l.vals {
			w("%s: %s", l.tag, v)
		}
	}
	w("%%global debug_package %%{nil}\n%%global __os_install_post %%{nil}\n%%global _build_id_links none")
	w("%%description\nfixture package %s\n%%prep\n%%build\n%%install\nmkdir -p %%{buildroot}", s.Name)
	for _, d := range s.Dirs {
		w("mkdir -p %%{buildroot}%s", d)
	}
	for _, m := range []map[string]string{s.Files, s.Exec} {
		for _, p := range sortedKeys(m) {
			w("mkdir -p %%{buildroot}%s\nprintf %%s %s > %%{buildroot}%s", filepath.Dir(p), shQuote(m[p]), p)
		}
	}
	for _, p := range sortedKeys(s.Exec) {
		w("chmod 0755 %%{buildroot}%s", p)
	}
	for _, p := range sortedKeys(s.Symlinks) {
		w("mkdir -p %%{buildroot}%s\nln -s %s %%{buildroot}%s", filepath.Dir(p), shQuote(s.Symlinks[p]), p)
	}
	for _, p := range sortedKeys(s.Hardlinks) {
		w("mkdir -p %%{buildroot}%s\nln %%{buildroot}%s %%{buildroot}%s", filepath.Dir(p), s.Hardlinks[p], p)
	}
	if s.ExtraInstall != "" {
		w("%s", s.ExtraInstall)
	}
	for _, sc := range []struct{ name, body string }{{"pre", s.Pre}, {"post", s.Post}, {"posttrans", s.PostTrans}} {
		if sc.body != "" {
			w("%%%s\n%s", sc.name, sc.body)
		}
	}
	for _, tr := range s.Triggers {
		w("%s", tr)
	}
	w("%%files")
	config := map[string]bool{}
	for _, c := range s.Config {
		config[c] = true
	}
	doc := map[string]bool{}
	for _, c := range s.Docs {
		doc[c] = true
	}
	attr := func(p string) string {
		if a, ok := s.Attr[p]; ok {
			return "%attr(" + a + ") "
		}
		return ""
	}
	for _, d := range s.Dirs {
		w("%s%%dir %s", attr(d), d)
	}
	var all []string
	for _, m := range []map[string]string{s.Files, s.Exec, s.Symlinks, s.Hardlinks} {
		all = append(all, sortedKeys(m)...)
	}
	for _, p := range all {
		prefix := attr(p)
		if config[p] {
			prefix += "%config(noreplace) "
		}
		if doc[p] {
			prefix += "%doc "
		}
		w("%s%s", prefix, p)
	}
	for _, g := range s.Ghost {
		w("%%ghost %s", g)
	}
	for _, l := range s.ExtraFiles {
		w("%s", l)
	}
	return b.String()
}

// Build runs rpmbuild for s and moves the package into outDir; it returns
// the package path. Builds are reproducible (fixed build time and host).
func (e *Env) Build(t testing.TB, s Spec, outDir string) string {
	t.Helper()
	top := filepath.Join(e.Dir, "top-"+s.Name+"-"+s.Version)
	os.MkdirAll(top, 0o755)
	specPath := filepath.Join(top, s.Name+".spec")
	if err := os.WriteFile(specPath, []byte(s.SpecText()), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-bb", "--quiet",
		"--define", "_topdir " + top,
		"--define", "_buildhost fixture.example",
		"--define", "use_source_date_epoch_as_buildtime 1",
		"--define", "clamp_mtime_to_source_date_epoch 1",
		"--define", "_binary_filedigest_algorithm 8",
	}
	switch s.Compress {
	case "xz":
		args = append(args, "--define", "_binary_payload w2.xzdio")
	case "zstd":
		args = append(args, "--define", "_binary_payload w3.zstdio")
	case "gzip":
		args = append(args, "--define", "_binary_payload w6.gzdio")
	}
	cmd := exec.Command("rpmbuild", append(args, specPath)...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+SourceDateEpoch)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild %s: %v\n%s\nspec:\n%s", s.Name, err, out, s.SpecText())
	}
	matches, _ := filepath.Glob(filepath.Join(top, "RPMS", "*", s.Name+"-"+s.Version+"-*.rpm"))
	if len(matches) != 1 {
		t.Fatalf("rpmbuild %s: expected one package, found %v", s.Name, matches)
	}
	os.MkdirAll(outDir, 0o755)
	dst := filepath.Join(outDir, filepath.Base(matches[0]))
	if err := os.Rename(matches[0], dst); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(top)
	return dst
}

// Sign adds an OpenPGP header signature with the Env's key.
func (e *Env) Sign(t testing.TB, rpmPath string) {
	t.Helper()
	cmd := exec.Command("rpmsign", "--addsign", "--define", "_gpg_name "+e.KeyName, "--define", "__gpg /usr/bin/gpg", rpmPath)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+e.GNUPGHOME)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpmsign %s: %v\n%s", rpmPath, err, out)
	}
}

// CreateRepo indexes dir with createrepo_c; compress is gz, xz or zstd.
func CreateRepo(t testing.TB, dir, compress string) {
	t.Helper()
	args := []string{"--quiet", "--no-database", "--revision", "1", "--set-timestamp-to-revision"}
	if compress != "" {
		args = append(args, "--general-compress-type", compress)
	}
	testutil.Run(t, "createrepo_c", append(args, dir)...)
}
