// Package initramfs builds the minimal initramfs compose gives a tree that
// ships a kernel but no initramfs, and is the /init that runs inside it.
//
// The archive holds the tree's own static os-update binary as /init, the
// kernel modules the treefile lists (initramfs-modules) with their
// dependencies, and the list of modules in load order. At boot, /init
// (Init) loads the modules, mounts the root= device at /sysroot, runs
// prepare-root for the ostree= deployment and switches root to its init.
package initramfs

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ModulesList is where the archive lists the module files to load, in
// order, one path (relative to /) per line.
const ModulesList = "etc/os-update-initramfs/modules"

// Options describes an initramfs to build.
type Options struct {
	// Tree is the root of the composed tree; KernelVersion names
	// usr/lib/modules/KVER in it.
	Tree          string
	KernelVersion string
	// Modules are module names to load at boot (dependencies added).
	Modules []string
	// InitPath is the static os-update binary to run as /init; InitData,
	// if set, is its content instead (read from the tree).
	InitPath string
	InitData []byte
	// MTime stamps every entry (SOURCE_DATE_EPOCH), for reproducible
	// archives.
	MTime int64
}

// Result says what went into the archive.
type Result struct {
	Modules []Module // in load order
	Size    int
}

// IsStatic reports whether the ELF file at p needs no dynamic loader, as
// the first program of an otherwise empty initramfs must.
func IsStatic(p string) (bool, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return false, err
	}
	return isStaticELF(data)
}

func isStaticELF(data []byte) (bool, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return false, err
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

// Build writes the gzip-compressed newc archive to w. The same inputs
// give the same bytes.
func Build(w io.Writer, opts Options) (*Result, error) {
	if opts.KernelVersion == "" || strings.ContainsAny(opts.KernelVersion, "/\x00") {
		return nil, fmt.Errorf("initramfs: bad kernel version %q", opts.KernelVersion)
	}
	initData := opts.InitData
	if initData == nil {
		var err error
		if initData, err = os.ReadFile(opts.InitPath); err != nil {
			return nil, fmt.Errorf("initramfs: %w", err)
		}
	}
	static, err := isStaticELF(initData)
	if err != nil {
		return nil, fmt.Errorf("initramfs: init program %s: %w", opts.InitPath, err)
	}
	if !static {
		return nil, fmt.Errorf("initramfs: init program %s is dynamically linked (build it with CGO_ENABLED=0)", opts.InitPath)
	}
	modRel := "usr/lib/modules/" + opts.KernelVersion
	modDir := filepath.Join(opts.Tree, modRel)
	// The modules directory must be inside the tree (no symlink out of it).
	if realTree, err := filepath.EvalSymlinks(opts.Tree); err == nil {
		if realMod, err := filepath.EvalSymlinks(modDir); err == nil && !strings.HasPrefix(realMod, realTree+"/") {
			return nil, fmt.Errorf("initramfs: /%s leads outside the tree", modRel)
		}
	}
	var mods []Module
	if len(opts.Modules) > 0 {
		if mods, err = ResolveModules(modDir, opts.Modules); err != nil {
			return nil, fmt.Errorf("initramfs: %w", err)
		}
	}
	entries := []Entry{
		{Name: "init", Mode: modeReg | 0o755, Data: initData},
		{Name: "dev/console", Mode: modeChr | 0o600, Major: 5, Minor: 1},
		{Name: "dev/null", Mode: modeChr | 0o666, Major: 1, Minor: 3},
		{Name: "tmp", Mode: modeDir | 0o1777},
	}
	dirs := map[string]bool{}
	addDir := func(p string) {
		for ; p != "." && p != "/" && !dirs[p]; p = path.Dir(p) {
			dirs[p] = true
			entries = append(entries, Entry{Name: p, Mode: modeDir | 0o755})
		}
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "sysroot", "etc/os-update-initramfs", modRel} {
		addDir(d)
	}
	var list strings.Builder
	for _, m := range mods {
		data, err := ReadModule(filepath.Join(modDir, m.Path))
		if err != nil {
			return nil, fmt.Errorf("initramfs: %w", err)
		}
		name := modRel + "/" + filepath.ToSlash(m.Path)
		for _, s := range moduleSuffixes[1:] {
			name = strings.TrimSuffix(name, strings.TrimPrefix(s, ".ko"))
		}
		addDir(path.Dir(name))
		entries = append(entries, Entry{Name: name, Mode: modeReg | 0o644, Data: data})
		list.WriteString(name + "\n")
	}
	entries = append(entries, Entry{Name: ModulesList, Mode: modeReg | 0o644, Data: []byte(list.String())})

	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err := WriteCPIO(zw, entries, opts.MTime); err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	n, err := w.Write(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	return &Result{Modules: mods, Size: n}, nil
}

func newGzipReader(raw []byte) (io.Reader, error) { return gzip.NewReader(bytes.NewReader(raw)) }
