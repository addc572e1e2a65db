package ostreecli

import (
	"reflect"
	"testing"
)

// The option forms GOptionContext accepts, which scripts written for
// ostree use interchangeably.
func TestOptionForms(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		branch string
		meta   []string
		quiet  bool
		rec    bool
		pos    []string
	}{
		{args: []string{"-b", "main", "dir"}, branch: "main", pos: []string{"dir"}},
		{args: []string{"-bmain"}, branch: "main"},
		{args: []string{"--branch=main"}, branch: "main"},
		{args: []string{"--branch", "main", "x", "-q"}, branch: "main", quiet: true, pos: []string{"x"}},
		{args: []string{"-qR"}, quiet: true, rec: true},
		{args: []string{"--quiet=true"}, quiet: true},
		{args: []string{"--meta=a=1", "--meta", "b=2"}, meta: []string{"a=1", "b=2"}},
		{args: []string{"-b", "x", "--", "-q", "--branch=y"}, branch: "x", pos: []string{"-q", "--branch=y"}},
	} {
		var s optionSet
		var branch string
		var meta []string
		var quiet, rec bool
		s.str("branch", 'b', &branch, "B", "")
		s.strs("meta", 0, &meta, "KV", "")
		s.flag("quiet", 'q', &quiet, "")
		s.flag("recursive", 'R', &rec, "")
		pos, err := s.parse(tc.args)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if branch != tc.branch || !reflect.DeepEqual(meta, tc.meta) || quiet != tc.quiet || rec != tc.rec || !reflect.DeepEqual(pos, tc.pos) {
			t.Errorf("%q: got branch=%q meta=%q q=%v R=%v pos=%q", tc.args, branch, meta, quiet, rec, pos)
		}
	}
}

func TestOptionErrors(t *testing.T) {
	var s optionSet
	var v string
	var q bool
	s.str("repo", 0, &v, "PATH", "")
	s.flag("quiet", 'q', &q, "")
	for args, want := range map[string][]string{
		"Unknown option --foo":        {"--foo"},
		"Unknown option -x":           {"-x"},
		"Missing argument for --repo": {"--repo"},
	} {
		if _, err := s.parse(want); err == nil || err.Error() != args {
			t.Errorf("%q: got %v, want %q", want, err, args)
		}
	}
}
