// Package treefile reads compose treefiles: a documented YAML subset of
// rpm-ostree's treefile. Unknown keys are errors naming the file and line;
// `include` files are merged under the including file.
package treefile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// AddFile copies a file from the compose host into the tree.
type AddFile struct {
	Src  string // absolute path on the host (resolved against its treefile)
	Dest string // absolute path in the tree
}

// RemoveFromPackage drops paths owned by one package, matched by regexps.
type RemoveFromPackage struct {
	Package string
	Paths   []string
}

// Treefile is a fully merged treefile.
type Treefile struct {
	Path                   string // the top-level file
	Ref                    string
	Repos                  []string
	Packages               []string
	ExcludePackages        []string
	RemoveFiles            []string
	RemoveFromPackages     []RemoveFromPackage
	AddFiles               []AddFile
	Postprocess            []string
	Units                  []string
	DefaultTarget          string
	EtcGroupMembers        []string
	MutateOSRelease        string
	AutomaticVersionPrefix string
	Releasever             string
	Documentation          bool
	Recommends             bool
	// InitramfsModules are kernel modules (by name) that the initramfs
	// compose builds loads, with their dependencies, before mounting the
	// root (e.g. virtio_pci, virtio_blk).
	InitramfsModules []string
	// RepoDirs are the directories searched for .repo files: those of the
	// treefile and of every included file.
	RepoDirs []string
}

// raw mirrors the YAML; pointers tell "absent" from "false" for merging.
type raw struct {
	Include                any        `yaml:"include"`
	Ref                    string     `yaml:"ref"`
	Repos                  []string   `yaml:"repos"`
	Packages               []string   `yaml:"packages"`
	ExcludePackages        []string   `yaml:"exclude-packages"`
	RemoveFiles            []string   `yaml:"remove-files"`
	RemoveFromPackages     [][]string `yaml:"remove-from-packages"`
	AddFiles               [][]string `yaml:"add-files"`
	Postprocess            []string   `yaml:"postprocess"`
	Units                  []string   `yaml:"units"`
	DefaultTarget          string     `yaml:"default-target"`
	EtcGroupMembers        []string   `yaml:"etc-group-members"`
	MutateOSRelease        string     `yaml:"mutate-os-release"`
	AutomaticVersionPrefix string     `yaml:"automatic-version-prefix"`
	Releasever             string     `yaml:"releasever"`
	Documentation          *bool      `yaml:"documentation"`
	Recommends             *bool      `yaml:"recommends"`
	InitramfsModules       []string   `yaml:"initramfs-modules"`
}

var knownKeys = map[string]bool{
	"include": true, "ref": true, "repos": true, "packages": true, "exclude-packages": true,
	"remove-files": true, "remove-from-packages": true, "add-files": true, "postprocess": true,
	"units": true, "default-target": true, "etc-group-members": true, "mutate-os-release": true,
	"automatic-version-prefix": true, "releasever": true, "documentation": true, "recommends": true,
	"initramfs-modules": true,
}

const maxIncludeDepth = 32

// Load reads a treefile and its includes.
func Load(path string) (*Treefile, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	t := &Treefile{Path: abs, Documentation: true, Recommends: true}
	if err := t.merge(abs, map[string]bool{}, 0); err != nil {
		return nil, err
	}
	if t.Ref == "" {
		return nil, fmt.Errorf("%s: no ref given", abs)
	}
	t.Ref = t.expand(t.Ref)
	if len(t.Packages) == 0 {
		return nil, fmt.Errorf("%s: no packages given", abs)
	}
	return t, nil
}

// Parse reads a single treefile from bytes, without includes (name is used
// in errors); mainly for tests and fuzzing.
func Parse(name string, data []byte) (*Treefile, error) {
	r, err := decode(name, data)
	if err != nil {
		return nil, err
	}
	if r.Include != nil {
		return nil, fmt.Errorf("%s: include is not allowed here", name)
	}
	t := &Treefile{Path: name, Documentation: true, Recommends: true}
	return t, t.apply(r, filepath.Dir(name), name)
}

func decode(name string, data []byte) (*raw, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: treefile must be a mapping", name, doc.Line)
	}
	m := doc.Content[0]
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if !knownKeys[k.Value] {
			return nil, fmt.Errorf("%s:%d: unknown key %q", name, k.Line, k.Value)
		}
		if seen[k.Value] {
			return nil, fmt.Errorf("%s:%d: duplicate key %q", name, k.Line, k.Value)
		}
		seen[k.Value] = true
	}
	var r raw
	if err := m.Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// yaml.v3 reports type errors with lines but without the file name,
	// which the wrap above adds.
	return &r, nil
}

func (t *Treefile) merge(path string, active map[string]bool, depth int) error {
	if depth > maxIncludeDepth {
		return fmt.Errorf("%s: includes nested too deeply", path)
	}
	if active[path] {
		return fmt.Errorf("%s: include cycle", path)
	}
	active[path] = true
	defer delete(active, path)
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read treefile: %w", err)
	}
	r, err := decode(path, data)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	var incs []string
	switch v := r.Include.(type) {
	case nil:
	case string:
		incs = []string{v}
	case []any:
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return fmt.Errorf("%s: include entries must be strings", path)
			}
			incs = append(incs, s)
		}
	default:
		return fmt.Errorf("%s: include must be a string or a list of strings", path)
	}
	// Included files come first so that the including file's scalars win
	// and its lists follow theirs.
	for _, inc := range incs {
		if !filepath.IsAbs(inc) {
			inc = filepath.Join(dir, inc)
		}
		if err := t.merge(inc, active, depth+1); err != nil {
			return err
		}
	}
	return t.apply(r, dir, path)
}

func (t *Treefile) apply(r *raw, dir, name string) error {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&t.Ref, r.Ref)
	set(&t.DefaultTarget, r.DefaultTarget)
	set(&t.MutateOSRelease, r.MutateOSRelease)
	set(&t.AutomaticVersionPrefix, r.AutomaticVersionPrefix)
	set(&t.Releasever, r.Releasever)
	if r.Documentation != nil {
		t.Documentation = *r.Documentation
	}
	if r.Recommends != nil {
		t.Recommends = *r.Recommends
	}
	t.Repos = appendUnique(t.Repos, r.Repos...)
	for _, p := range r.Packages {
		// rpm-ostree allows several names per entry, separated by spaces.
		t.Packages = appendUnique(t.Packages, strings.Fields(p)...)
	}
	for _, p := range r.ExcludePackages {
		t.ExcludePackages = appendUnique(t.ExcludePackages, strings.Fields(p)...)
	}
	t.RemoveFiles = append(t.RemoveFiles, r.RemoveFiles...)
	for _, e := range r.RemoveFromPackages {
		if len(e) < 2 {
			return fmt.Errorf("%s: remove-from-packages entries are [package, path-regexp...]", name)
		}
		t.RemoveFromPackages = append(t.RemoveFromPackages, RemoveFromPackage{Package: e[0], Paths: e[1:]})
	}
	for _, e := range r.AddFiles {
		if len(e) != 2 {
			return fmt.Errorf("%s: add-files entries are [source, destination]", name)
		}
		src := e[0]
		if !filepath.IsAbs(src) {
			src = filepath.Join(dir, src)
		}
		if !strings.HasPrefix(e[1], "/") {
			return fmt.Errorf("%s: add-files destination %q must be absolute", name, e[1])
		}
		t.AddFiles = append(t.AddFiles, AddFile{Src: src, Dest: e[1]})
	}
	t.Postprocess = append(t.Postprocess, r.Postprocess...)
	t.Units = appendUnique(t.Units, r.Units...)
	for _, m := range r.InitramfsModules {
		t.InitramfsModules = appendUnique(t.InitramfsModules, strings.Fields(m)...)
	}
	t.EtcGroupMembers = appendUnique(t.EtcGroupMembers, r.EtcGroupMembers...)
	t.RepoDirs = appendUnique(t.RepoDirs, dir)
	return nil
}

func appendUnique(dst []string, vs ...string) []string {
	for _, v := range vs {
		dup := false
		for _, d := range dst {
			if d == v {
				dup = true
				break
			}
		}
		if !dup {
			dst = append(dst, v)
		}
	}
	return dst
}

// expand substitutes ${releasever} and ${basearch}.
func (t *Treefile) expand(s string) string {
	return strings.NewReplacer("${releasever}", t.Releasever, "$releasever", t.Releasever,
		"${basearch}", "x86_64", "$basearch", "x86_64").Replace(s)
}
