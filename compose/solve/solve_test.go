package solve

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/osupdate/os-update/compose/rpmmd"
	"github.com/osupdate/os-update/compose/rpmver"
	"github.com/osupdate/os-update/internal/testutil"
)

// pkg builds a package from "name-[e:]v-r.arch" and dependency specs
// "R:req", "P:provide", "C:conflict", "O:obsolete", "W:recommend",
// "F:/file", "PRE:req"; versioned ones are written "name >= 1.0".
func pkg(t *testing.T, nevra string, deps ...string) *rpmmd.Package {
	t.Helper()
	dot := strings.LastIndexByte(nevra, '.')
	nevr, arch := nevra[:dot], nevra[dot+1:]
	i := strings.LastIndexByte(nevr, '-')
	j := strings.LastIndexByte(nevr[:i], '-')
	evr, err := rpmver.Parse(nevr[j+1:])
	if err != nil {
		t.Fatal(err)
	}
	p := &rpmmd.Package{Name: nevr[:j], EVR: evr, Arch: arch, Location: nevra + ".rpm"}
	for _, d := range deps {
		kind, spec, _ := strings.Cut(d, ":")
		var dep rpmmd.Dep
		if strings.HasPrefix(spec, "(") {
			dep.Name = spec
		} else {
			f := strings.Fields(spec)
			dep.Name = f[0]
			if len(f) == 3 {
				dep.Flags, _ = rpmver.ParseFlags(f[1])
				dep.EVR, _ = rpmver.Parse(f[2])
			}
		}
		switch kind {
		case "R":
			p.Requires = append(p.Requires, dep)
		case "PRE":
			dep.Pre = true
			p.Requires = append(p.Requires, dep)
		case "P":
			p.Provides = append(p.Provides, dep)
		case "C":
			p.Conflicts = append(p.Conflicts, dep)
		case "O":
			p.Obsoletes = append(p.Obsoletes, dep)
		case "W":
			p.Recommends = append(p.Recommends, dep)
		case "F":
			p.Files = append(p.Files, spec)
		default:
			t.Fatalf("bad dep kind %q", d)
		}
	}
	return p
}

type puzzle struct {
	name    string
	pool    [][]string // each: nevra, deps...
	request []string
	opts    Options
	want    []string // sorted NEVRAs, or nil when an error is expected
	wantErr []string // substrings of the error
	wantSeq []string // optional exact install order
	// noRef says why the puzzle is not checked against libsolv.
	noRef string
}

// The expected answers are what rpm/dnf semantics require (worked out by
// hand, the reference here); several puzzles are built so that the
// first-looking choice is wrong and only backtracking finds the answer.
var puzzles = []puzzle{
	{name: "highest version wins",
		pool:    [][]string{{"a-1-1.noarch", "R:b >= 2"}, {"b-1-1.noarch"}, {"b-2-1.noarch"}, {"b-3-1.noarch"}},
		request: []string{"a"}, want: []string{"a-1-1.noarch", "b-3-1.noarch"}},
	{name: "newest a is uninstallable, older one works",
		pool:    [][]string{{"a-2-1.noarch", "R:c >= 5"}, {"a-1-1.noarch", "R:c"}, {"c-1-1.noarch"}},
		request: []string{"a"}, want: []string{"a-1-1.noarch", "c-1-1.noarch"}},
	{name: "epoch beats version",
		pool:    [][]string{{"x-2.0-1.noarch"}, {"x-1:0.5-1.noarch"}, {"y-1-1.noarch", "R:x < 1:0"}},
		request: []string{"y"}, want: []string{"x-2.0-1.noarch", "y-1-1.noarch"}},
	{name: "epoch in requirement",
		pool:    [][]string{{"x-2.0-1.noarch"}, {"x-1:0.5-1.noarch"}, {"y-1-1.noarch", "R:x >= 1:0.1"}},
		request: []string{"y"}, want: []string{"x-1:0.5-1.noarch", "y-1-1.noarch"}},
	{name: "tilde pre-release does not satisfy >= final",
		pool:    [][]string{{"a-1-1.noarch", "R:lib >= 1.0"}, {"lib-1.0~rc1-1.noarch"}},
		request: []string{"a"}, wantErr: []string{"nothing provides lib >= 1.0 needed by a-1-1.noarch"}},
	{name: "caret snapshot satisfies > final",
		pool:    [][]string{{"a-1-1.noarch", "R:lib > 1.0"}, {"lib-1.0^git5-1.noarch"}},
		request: []string{"a"}, want: []string{"a-1-1.noarch", "lib-1.0^git5-1.noarch"}},
	{name: "file requirement",
		pool:    [][]string{{"a-1-1.noarch", "R:/usr/bin/tool"}, {"toolbox-1-1.noarch", "F:/usr/bin/tool"}, {"other-1-1.noarch", "F:/usr/bin/else"}},
		request: []string{"a"}, want: []string{"a-1-1.noarch", "toolbox-1-1.noarch"}},
	{name: "virtual provide: alphabetical provider conflicts",
		pool: [][]string{{"app-1-1.noarch", "R:mta", "R:b"}, {"exim-1-1.noarch", "P:mta"}, {"postfix-1-1.noarch", "P:mta"},
			{"b-1-1.noarch", "C:exim"}},
		request: []string{"app"}, want: []string{"app-1-1.noarch", "b-1-1.noarch", "postfix-1-1.noarch"}},
	{name: "deep backtrack over versions",
		pool: [][]string{{"a-1-1.noarch", "R:b", "R:d"}, {"b-2-1.noarch", "R:c = 2"}, {"b-1-1.noarch", "R:c = 1"},
			{"c-2-1.noarch"}, {"c-1-1.noarch"}, {"d-1-1.noarch", "C:c = 2"}},
		request: []string{"a"}, want: []string{"a-1-1.noarch", "b-1-1.noarch", "c-1-1.noarch", "d-1-1.noarch"}},
	{name: "request of an obsoleted name installs the replacement",
		noRef:   "dnf-level rule: libsolv installs the named package itself",
		pool:    [][]string{{"oldalpha-1-1.noarch"}, {"alpha-2-1.noarch", "O:oldalpha < 2", "P:oldalpha = 2"}},
		request: []string{"oldalpha"}, want: []string{"alpha-2-1.noarch"}},
	{name: "obsoletes keeps the old package out",
		pool:    [][]string{{"old-1-1.noarch"}, {"new-1-1.noarch", "O:old"}, {"x-1-1.noarch", "R:old"}},
		request: []string{"new", "x"}, wantErr: []string{"obsoletes old-1-1.noarch"}},
	{name: "rich or falls through to second operand",
		noRef:   "Debian's libsolv is built without rich dependency support",
		pool:    [][]string{{"a-1-1.noarch", "R:(beta >= 1.0 or gamma)"}, {"beta-0.9-1.noarch"}, {"gamma-1-1.noarch"}},
		request: []string{"a"}, want: []string{"a-1-1.noarch", "gamma-1-1.noarch"}},
	{name: "rich if with condition present",
		noRef:   "Debian's libsolv is built without rich dependency support",
		pool:    [][]string{{"a-1-1.noarch", "R:(a-fr if lang-fr)"}, {"a-fr-1-1.noarch"}, {"lang-fr-1-1.noarch"}},
		request: []string{"a", "lang-fr"}, want: []string{"a-1-1.noarch", "a-fr-1-1.noarch", "lang-fr-1-1.noarch"}},
	{name: "rich if with condition absent",
		noRef:   "Debian's libsolv is built without rich dependency support",
		pool:    [][]string{{"a-1-1.noarch", "R:(a-fr if lang-fr)"}, {"a-fr-1-1.noarch"}, {"lang-fr-1-1.noarch"}},
		request: []string{"a"}, want: []string{"a-1-1.noarch"}},
	{name: "rich with needs one package",
		noRef: "Debian's libsolv is built without rich dependency support",
		pool: [][]string{{"a-1-1.noarch", "R:(lib with feat)"}, {"lib-a-1-1.noarch", "P:lib"}, {"lib-b-1-1.noarch", "P:lib", "P:feat"},
			{"feat-only-1-1.noarch", "P:feat"}},
		request: []string{"a"}, want: []string{"a-1-1.noarch", "lib-b-1-1.noarch"}},
	{name: "rich unless else",
		noRef:   "Debian's libsolv is built without rich dependency support",
		pool:    [][]string{{"a-1-1.noarch", "R:(x unless y else z)"}, {"x-1-1.noarch"}, {"y-1-1.noarch"}, {"z-1-1.noarch"}},
		request: []string{"a", "y"}, want: []string{"a-1-1.noarch", "y-1-1.noarch", "z-1-1.noarch"}},
	{name: "rich and",
		noRef:   "Debian's libsolv is built without rich dependency support",
		pool:    [][]string{{"a-1-1.noarch", "R:((p >= 2 and q) or r)"}, {"p-1-1.noarch"}, {"q-1-1.noarch"}, {"r-1-1.noarch"}},
		request: []string{"a"}, want: []string{"a-1-1.noarch", "r-1-1.noarch"}},
	{name: "arch preference and foreign arch ignored",
		pool:    [][]string{{"z-1-1.i686"}, {"z-1-1.x86_64"}, {"z-1-1.aarch64"}, {"w-1-1.noarch", "R:z"}},
		request: []string{"w"}, opts: Options{Arches: []string{"x86_64", "noarch", "i686"}},
		want: []string{"w-1-1.noarch", "z-1-1.x86_64"}},
	{name: "unsatisfiable conflict",
		pool:    [][]string{{"a-1-1.noarch", "C:b"}, {"b-1-1.noarch"}},
		request: []string{"a", "b"}, wantErr: []string{"a-1-1.noarch conflicts with b-1-1.noarch"}},
	{name: "lock pins an older version",
		noRef:   "locks are not a libsolv job here",
		pool:    [][]string{{"a-1-1.noarch", "R:lib"}, {"lib-1.0-1.noarch"}, {"lib-2.0-1.noarch"}},
		request: []string{"a"}, opts: Options{Locked: map[string]string{"lib": "1.0-1.noarch"}},
		want: []string{"a-1-1.noarch", "lib-1.0-1.noarch"}},
	{name: "lock that cannot be met",
		noRef:   "locks are not a libsolv job here",
		pool:    [][]string{{"lib-2.0-1.noarch"}},
		request: []string{"lib"}, opts: Options{Locked: map[string]string{"lib": "1.0-1.noarch"}},
		wantErr: []string{"locked package lib-1.0-1.noarch is not available"}},
	{name: "excluded dependency names the needer",
		noRef:   "excludes are not a libsolv job here",
		pool:    [][]string{{"a-1-1.noarch", "R:b >= 1"}, {"b-1-1.noarch"}},
		request: []string{"a"}, opts: Options{Exclude: []string{"b*"}},
		wantErr: []string{"nothing provides b >= 1 needed by a-1-1.noarch"}},
	{name: "unknown request",
		pool: [][]string{{"a-1-1.noarch"}}, request: []string{"nope"}, wantErr: []string{`no package provides "nope"`}},
	{name: "recommends installed when possible, skipped when not",
		pool:    [][]string{{"a-1-1.noarch", "W:r", "W:s"}, {"r-1-1.noarch", "R:missing"}, {"s-1-1.noarch"}},
		request: []string{"a"}, opts: Options{Recommends: true}, want: []string{"a-1-1.noarch", "s-1-1.noarch"}},
	{name: "recommends off",
		pool:    [][]string{{"a-1-1.noarch", "W:s"}, {"s-1-1.noarch"}},
		request: []string{"a"}, want: []string{"a-1-1.noarch"}},
	{name: "install order puts requirements first",
		pool:    [][]string{{"a-1-1.noarch", "R:b"}, {"b-1-1.noarch", "PRE:c"}, {"c-1-1.noarch"}, {"aa-1-1.noarch"}},
		request: []string{"a", "aa"}, want: []string{"a-1-1.noarch", "aa-1-1.noarch", "b-1-1.noarch", "c-1-1.noarch"},
		wantSeq: []string{"c-1-1.noarch", "b-1-1.noarch", "a-1-1.noarch", "aa-1-1.noarch"}},
	{name: "diamond with a shared pinned dependency",
		pool: [][]string{{"a-1-1.noarch", "R:b", "R:c"}, {"b-1-1.noarch", "R:d = 1"}, {"c-1-1.noarch", "R:d >= 1"},
			{"d-1-1.noarch"}, {"d-2-1.noarch"}},
		request: []string{"a"}, want: []string{"a-1-1.noarch", "b-1-1.noarch", "c-1-1.noarch", "d-1-1.noarch"}},
	{name: "conflict with a requested package forces an older library",
		pool:    [][]string{{"a-1-1.noarch", "R:lib"}, {"lib-2-1.noarch", "C:foo"}, {"lib-1-1.noarch"}, {"foo-1-1.noarch"}},
		request: []string{"foo", "a"}, want: []string{"a-1-1.noarch", "foo-1-1.noarch", "lib-1-1.noarch"}},
	{name: "versioned provide satisfies a versioned require",
		pool:    [][]string{{"a-1-1.noarch", "R:api >= 2.1"}, {"impl-old-1-1.noarch", "P:api = 2.0"}, {"impl-new-1-1.noarch", "P:api = 2.4"}},
		request: []string{"a"}, want: []string{"a-1-1.noarch", "impl-new-1-1.noarch"}},
	{name: "release compared when the requirement names one",
		pool:    [][]string{{"a-1-1.noarch", "R:b >= 1.0-5"}, {"b-1.0-4.noarch"}, {"b-1.0-10.noarch"}},
		request: []string{"a"}, want: []string{"a-1-1.noarch", "b-1.0-10.noarch"}},
	{name: "two-level backtrack through a provider",
		pool: [][]string{{"top-1-1.noarch", "R:svc", "R:cfg"}, {"svc-a-1-1.noarch", "P:svc", "R:base = 1"},
			{"svc-b-1-1.noarch", "P:svc", "R:base = 2"}, {"base-1-1.noarch"}, {"base-2-1.noarch"}, {"cfg-1-1.noarch", "C:base < 2"}},
		request: []string{"top"}, want: []string{"base-2-1.noarch", "cfg-1-1.noarch", "svc-b-1-1.noarch", "top-1-1.noarch"}},
	{name: "versioned request",
		pool:    [][]string{{"k-1-1.noarch"}, {"k-2-1.noarch"}},
		request: []string{"k < 2"}, want: []string{"k-1-1.noarch"}},
	{name: "rpmlib requirements are ignored",
		noRef:   "rpmlib() provides come from rpm itself",
		pool:    [][]string{{"k-1-1.noarch", "R:rpmlib(RichDependencies) <= 4.12.0-1"}},
		request: []string{"k"}, want: []string{"k-1-1.noarch"}},
}

func TestPuzzles(t *testing.T) {
	for _, pz := range puzzles {
		t.Run(pz.name, func(t *testing.T) {
			var pool []*rpmmd.Package
			for _, p := range pz.pool {
				pool = append(pool, pkg(t, p[0], p[1:]...))
			}
			res, err := Solve(context.Background(), pool, pz.request, pz.opts)
			if pz.wantErr != nil {
				if err == nil {
					t.Fatalf("solved, want error %q: %v", pz.wantErr, names(res.Install))
				}
				for _, w := range pz.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := names(res.Install)
			seq := strings.Join(got, " ")
			sort.Strings(got)
			if strings.Join(got, " ") != strings.Join(pz.want, " ") {
				t.Errorf("got %v, want %v", got, pz.want)
			}
			if pz.wantSeq != nil && seq != strings.Join(pz.wantSeq, " ") {
				t.Errorf("order %s, want %s", seq, strings.Join(pz.wantSeq, " "))
			}
		})
	}
}

func names(ps []*rpmmd.Package) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.NEVRA())
	}
	return out
}

// Determinism: the same input in any pool order gives the same answer.
func TestDeterministic(t *testing.T) {
	mk := func() []*rpmmd.Package {
		return []*rpmmd.Package{
			pkg(t, "app-1-1.noarch", "R:mta"), pkg(t, "exim-1-1.noarch", "P:mta"),
			pkg(t, "postfix-1-1.noarch", "P:mta"), pkg(t, "sendmail-1-1.noarch", "P:mta"),
		}
	}
	var first string
	for i := 0; i < 10; i++ {
		pool := mk()
		for j := range pool { // rotate
			k := (j + i) % len(pool)
			pool[j], pool[k] = pool[k], pool[j]
		}
		res, err := Solve(context.Background(), pool, []string{"app"}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		s := strings.Join(names(res.Install), " ")
		if i == 0 {
			first = s
		} else if s != first {
			t.Fatalf("run %d: %s, first %s", i, s, first)
		}
	}
}

func TestRichParse(t *testing.T) {
	for in, want := range map[string]string{
		"(a or b)":                    "(a or b)",
		"(a >= 1.0 and (b or c < 2))": "(a >= 1.0 and (b or c < 2))",
		"(a if b else c)":             "(a if b else c)",
		"(a with b with c)":           "(a with b with c)",
	} {
		e, err := parseDep(rpmmd.Dep{Name: in})
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if e.String() != want {
			t.Errorf("%s: got %s", in, e)
		}
	}
	for _, bad := range []string{"(a or)", "(a or b and c)", "(a", "(a else b)", "()", "(a >= )"} {
		if _, err := parseDep(rpmmd.Dep{Name: bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzRich(f *testing.F) {
	f.Add("(a or (b >= 1 and c))")
	f.Add("(a if b else c)")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseDep(rpmmd.Dep{Name: "(" + s})
	})
}

// TestAgainstLibsolv checks every puzzle against libsolv (the solver
// behind dnf), through its testsolv tool: the same packages must be
// installed, and a puzzle we reject must be a problem for libsolv too.
func TestAgainstLibsolv(t *testing.T) {
	testutil.RequireTool(t, "testsolv")
	for _, pz := range puzzles {
		if pz.noRef != "" {
			continue
		}
		t.Run(pz.name, func(t *testing.T) {
			var pool []*rpmmd.Package
			var b strings.Builder
			b.WriteString("repo system 0 testtags <inline>\nrepo available 0 testtags <inline>\n")
			for _, spec := range pz.pool {
				p := pkg(t, spec[0], spec[1:]...)
				pool = append(pool, p)
				v := p.EVR.Version
				if p.EVR.Epoch != 0 {
					v = fmt.Sprintf("%d:%s", p.EVR.Epoch, v)
				}
				fmt.Fprintf(&b, "#>=Pkg: %s %s %s %s\n", p.Name, v, p.EVR.Release, p.Arch)
				for _, d := range p.Requires {
					tag := "Req"
					if d.Pre {
						tag = "Prq"
					}
					fmt.Fprintf(&b, "#>=%s: %s\n", tag, d)
				}
				for _, x := range []struct {
					tag  string
					deps []rpmmd.Dep
				}{{"Prv", p.Provides}, {"Con", p.Conflicts}, {"Obs", p.Obsoletes}, {"Rec", p.Recommends}} {
					for _, d := range x.deps {
						fmt.Fprintf(&b, "#>=%s: %s\n", x.tag, d)
					}
				}
				for _, f := range p.Files {
					fmt.Fprintf(&b, "#>=Prv: %s\n", f)
				}
			}
			b.WriteString("system x86_64 rpm system\n")
			if !pz.opts.Recommends {
				b.WriteString("solverflags ignorerecommended\n")
			}
			for _, r := range pz.request {
				kind := "provides"
				for _, p := range pool {
					if p.Name == r {
						kind = "name"
					}
				}
				fmt.Fprintf(&b, "job install %s %s\n", kind, r)
			}
			b.WriteString("result transaction,problems <inline>\n")
			tc := filepath.Join(t.TempDir(), "case.t")
			os.WriteFile(tc, []byte(b.String()), 0o644)
			// testsolv exits 1 and prints the result when it differs from
			// the (empty) expected one, which is how we read it.
			out, _, _ := testutil.RunErr("testsolv", tc)
			var ref []string
			problem := false
			for _, line := range strings.Split(out, "\n") {
				if rest, ok := strings.CutPrefix(line, "+install "); ok {
					ref = append(ref, strings.TrimSuffix(rest, "@available"))
				}
				if strings.HasPrefix(line, "+problem ") {
					problem = true
				}
			}
			sort.Strings(ref)
			if !problem && len(ref) == 0 {
				t.Fatalf("no result from testsolv:\n%s\ncase:\n%s", out, b.String())
			}
			res, err := Solve(context.Background(), pool, pz.request, pz.opts)
			if problem {
				if err == nil {
					t.Errorf("libsolv finds a problem, we solved it: %v\n%s", names(res.Install), out)
				}
				return
			}
			if err != nil {
				t.Fatalf("libsolv installs %v, we fail: %v", ref, err)
			}
			got := names(res.Install)
			sort.Strings(got)
			if strings.Join(got, " ") != strings.Join(ref, " ") {
				t.Errorf("we install %v, libsolv %v", got, ref)
			}
		})
	}
}

// Solving on top of installed (base) packages: only what is missing is
// chosen, requests the base satisfies are dropped, and clashes with the
// base name the base package.
func TestInstalledBase(t *testing.T) {
	base := []*rpmmd.Package{
		pkg(t, "sh-1-1.x86_64", "F:/bin/sh"),
		pkg(t, "libfoo-1-1.x86_64", "P:libfoo.so"),
		pkg(t, "needy-1-1.noarch", "R:libfoo.so"),
	}
	pool := []*rpmmd.Package{
		pkg(t, "app-1-1.noarch", "R:/bin/sh", "R:helper"),
		pkg(t, "helper-1-1.noarch", "R:libfoo.so"),
		pkg(t, "libfoo-2-1.x86_64", "P:libfoo.so"),
		pkg(t, "enemy-1-1.noarch", "C:libfoo"),
		pkg(t, "newer-sh-1-1.noarch", "R:sh >= 2"),
		pkg(t, "sh-2-1.x86_64", "F:/bin/sh"),
	}
	res, err := Solve(context.Background(), pool, []string{"app", "libfoo.so"}, Options{Installed: base})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range res.Install {
		got = append(got, p.NEVRA())
	}
	if strings.Join(got, " ") != "helper-1-1.noarch app-1-1.noarch" {
		t.Errorf("install %v", got)
	}
	if p := res.Satisfied["libfoo.so"]; p == nil || p.Name != "libfoo" {
		t.Errorf("satisfied %v", res.Satisfied)
	}
	_, err = Solve(context.Background(), pool, []string{"enemy"}, Options{Installed: base})
	if err == nil || !strings.Contains(err.Error(), "conflicts with base package libfoo-1-1.x86_64") {
		t.Errorf("conflict with base: %v", err)
	}
	_, err = Solve(context.Background(), pool, []string{"newer-sh"}, Options{Installed: base})
	if err == nil || !strings.Contains(err.Error(), "base package sh-1-1.x86_64 is installed") {
		t.Errorf("base upgrade: %v", err)
	}
	// A base package removed (left out of Installed and excluded) whose
	// dependents remain: the dependent base package is named.
	_, err = Solve(context.Background(), pool, nil, Options{Installed: []*rpmmd.Package{base[0], base[2]}, Exclude: []string{"libfoo"}})
	if err == nil || !strings.Contains(err.Error(), "nothing provides libfoo.so needed by base package needy-1-1.noarch") {
		t.Errorf("removal breaking the base: %v", err)
	}
}
