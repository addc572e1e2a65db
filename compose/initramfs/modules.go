package initramfs

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Module is a kernel module resolved in a modules directory.
type Module struct {
	Name    string   // canonical name (dashes as underscores)
	Path    string   // relative to the modules directory, e.g. kernel/drivers/block/virtio_blk.ko
	Depends []string // direct dependencies, from .modinfo depends=
}

// canonical makes module names comparable: the kernel treats - and _ alike.
func canonical(name string) string { return strings.ReplaceAll(name, "-", "_") }

// moduleSuffixes are the module file names compose understands.
var moduleSuffixes = []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"}

func moduleName(file string) (string, bool) {
	for _, s := range moduleSuffixes {
		if strings.HasSuffix(file, s) {
			return canonical(strings.TrimSuffix(file, s)), true
		}
	}
	return "", false
}

// ResolveModules finds the named modules under modDir
// (/usr/lib/modules/KVER) and returns them with every dependency, in load
// order (dependencies first). Dependencies come from each module's own
// .modinfo section, so no modules.dep is needed (Debian's kernel package
// ships none: depmod makes it at install). A name that is built into the
// kernel (modules.builtin) is skipped; an unknown one is an error.
func ResolveModules(modDir string, names []string) ([]Module, error) {
	index := map[string]string{}
	err := filepath.WalkDir(modDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if n, ok := moduleName(d.Name()); ok {
				rel, _ := filepath.Rel(modDir, p)
				if prev, dup := index[n]; !dup || rel < prev {
					index[n] = rel
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("modules in %s: %w", modDir, err)
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(modDir, "modules.builtin")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if n, ok := moduleName(filepath.Base(strings.TrimSpace(l))); ok {
				builtin[n] = true
			}
		}
	}
	var order []Module
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name, neededBy string) error
	visit = func(name, neededBy string) error {
		name = canonical(name)
		switch state[name] {
		case 1:
			return fmt.Errorf("module %s: dependency cycle", name)
		case 2:
			return nil
		}
		rel, ok := index[name]
		if !ok {
			if builtin[name] {
				state[name] = 2
				return nil
			}
			if neededBy != "" {
				return fmt.Errorf("module %s (needed by %s) not found in %s", name, neededBy, modDir)
			}
			return fmt.Errorf("module %s not found in %s", name, modDir)
		}
		state[name] = 1
		data, err := ReadModule(filepath.Join(modDir, rel))
		if err != nil {
			return err
		}
		deps, err := modinfoDepends(data)
		if err != nil {
			return fmt.Errorf("module %s: %w", rel, err)
		}
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, Module{Name: name, Path: rel, Depends: deps})
		return nil
	}
	for _, n := range names {
		if err := visit(n, ""); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// ReadModule reads a module file, decompressing .ko.xz, .ko.zst and
// .ko.gz so that the initramfs can hand it to finit_module as is.
func ReadModule(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	switch {
	case strings.HasSuffix(path, ".ko.xz"):
		xr, err := xz.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r = xr
	case strings.HasSuffix(path, ".ko.zst"):
		zr, err := zstd.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	case strings.HasSuffix(path, ".ko.gz"):
		gr, err := newGzipReader(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r = gr
	default:
		return raw, nil
	}
	out, err := io.ReadAll(io.LimitReader(r, 1<<30))
	if err != nil {
		return nil, fmt.Errorf("%s: decompress: %w", path, err)
	}
	return out, nil
}

// modinfoDepends returns the depends= list of a module's .modinfo section
// (NUL-separated key=value strings).
func modinfoDepends(data []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not an ELF module: %w", err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("no .modinfo section")
	}
	info, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf(".modinfo: %w", err)
	}
	var deps []string
	for _, kv := range bytes.Split(info, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			for _, d := range strings.Split(string(v), ",") {
				if d = strings.TrimSpace(d); d != "" {
					deps = append(deps, canonical(d))
				}
			}
		}
	}
	sort.Strings(deps)
	return deps, nil
}
