package rpmdb

import (
	"strings"
	"testing"

	"github.com/osupdate/os-update/compose/rpmver"
)

// The query output rpm prints for queryFormat becomes solver metadata:
// rpm's sense bits map to comparisons, pre-requirements are marked, an
// unversioned entry has no flags, and packages are sorted by name.
func TestParseQuery(t *testing.T) {
	out := "@\tzeta\t0\t1.0\t1\tnoarch\n" +
		"@\talpha\t2\t3.1\t4.fc40\tx86_64\n" +
		"P\talpha\t8\t2:3.1-4.fc40\n" +
		"P\tlibalpha.so.1()(64bit)\t0\t\n" +
		"R\t/bin/sh\t576\t\n" +
		"R\tzeta\t12\t1.0\n" +
		"C\tbeta\t2\t2\n" +
		"O\told-alpha\t10\t3\n" +
		"F\t/usr/bin/alpha\n" +
		"F\t/usr/share/doc/alpha with space\n"
	pkgs, err := parseQuery(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 2 || pkgs[0].Name != "alpha" || pkgs[1].Name != "zeta" {
		t.Fatalf("packages %v", pkgs)
	}
	a := pkgs[0]
	if a.NEVRA() != "alpha-2:3.1-4.fc40.x86_64" {
		t.Errorf("nevra %s", a.NEVRA())
	}
	if a.Provides[0].Flags != rpmver.EQ || a.Provides[0].EVR.Epoch != 2 || a.Provides[1].Flags != 0 {
		t.Errorf("provides %+v", a.Provides)
	}
	if !a.Requires[0].Pre || a.Requires[0].Flags != 0 || a.Requires[1].Flags != rpmver.GT|rpmver.EQ {
		t.Errorf("requires %+v", a.Requires)
	}
	if a.Conflicts[0].Flags != rpmver.LT || a.Obsoletes[0].Flags != rpmver.LT|rpmver.EQ {
		t.Errorf("conflicts %+v obsoletes %+v", a.Conflicts, a.Obsoletes)
	}
	if strings.Join(a.Files, ",") != "/usr/bin/alpha,/usr/share/doc/alpha with space" {
		t.Errorf("files %v", a.Files)
	}
	for _, bad := range []string{"R\tx\t0\t\n", "@\ta\tx\t1\t1\tnoarch\n", "@\ta\t0\t1\t1\tnoarch\nQ\tq\t0\t\n"} {
		if _, err := parseQuery(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
