package delta

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// pseudoBinary builds bytes shaped like compiled code: functions made of
// opcode-like bytes with embedded relative call addresses and a string
// table. Versions differ in a few function bodies; because every function
// after a changed one moves, the call addresses change all over the file,
// as after a real recompile. That defeats chunk matching and is what
// bsdiff is for.
func pseudoBinary(seed int64, nfuncs, version int) []byte {
	r := rand.New(rand.NewSource(seed))
	type fn struct{ body []byte }
	funcs := make([]fn, nfuncs)
	ops := []byte{0x48, 0x89, 0x8b, 0x83, 0xc3, 0x55, 0x5d, 0x31, 0xc0, 0x0f, 0x1f, 0x44, 0x00, 0x85, 0x74, 0x75}
	for i := range funcs {
		n := 40 + r.Intn(400)
		b := make([]byte, n)
		for j := range b {
			if r.Intn(4) == 0 {
				b[j] = byte(r.Intn(256))
			} else {
				b[j] = ops[r.Intn(len(ops))]
			}
		}
		funcs[i].body = b
	}
	// The "source change" of each version: a few functions grow.
	vr := rand.New(rand.NewSource(seed + int64(version)*7919))
	for v := 1; v < version; v++ {
		for k := 0; k < 3; k++ {
			i := vr.Intn(nfuncs)
			extra := make([]byte, 5+vr.Intn(40))
			vr.Read(extra)
			funcs[i].body = append(funcs[i].body[:len(funcs[i].body)/2:len(funcs[i].body)/2], append(extra, funcs[i].body[len(funcs[i].body)/2:]...)...)
		}
	}
	// Layout, then emit with calls every 32 bytes to other functions.
	offs := make([]int, nfuncs)
	pos := 0
	for i, f := range funcs {
		offs[i] = pos
		pos += len(f.body) + (len(f.body)/32)*5
	}
	out := make([]byte, 0, pos+nfuncs*16)
	cr := rand.New(rand.NewSource(seed + 1))
	for i, f := range funcs {
		for j := 0; j < len(f.body); j += 32 {
			out = append(out, f.body[j:min(j+32, len(f.body))]...)
			if j+32 <= len(f.body) {
				target := cr.Intn(nfuncs)
				rel := int32(offs[target] - (offs[i] + j))
				out = append(out, 0xe8)
				out = binary.LittleEndian.AppendUint32(out, uint32(rel))
			}
		}
	}
	for i := 0; i < nfuncs/4; i++ {
		out = append(out, fmt.Sprintf("symbol_%d_%d\x00", seed, i)...)
	}
	out = append(out, fmt.Sprintf("version %d\x00", version)...)
	return out
}

// dataFile is mostly-stable data with one region rewritten per version:
// the case chunk matching (rollsum) handles.
func dataFile(seed int64, size, version int) []byte {
	b := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(b)
	if version > 1 {
		r := rand.New(rand.NewSource(seed + int64(version)))
		at := size / 3
		r.Read(b[at : at+size/20])
	}
	return b
}

// writeOSTree writes version v of an OS-like tree to dir: binaries,
// libraries, data, config, symlinks. Between versions binaries are
// "recompiled", files are added, removed and renamed, and a mode changes.
func writeOSTree(t testing.TB, dir string, v int) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel string, data []byte, mode os.FileMode) {
		p := filepath.Join(dir, rel)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, mode))
		must(os.Chmod(p, mode))
	}
	write("usr/bin/app", pseudoBinary(1, 3000, v), 0o755)
	write("usr/bin/helper", pseudoBinary(2, 800, v), 0o755)
	write(fmt.Sprintf("usr/lib/libfoo.so.1.%d", v), pseudoBinary(3, 1500, v), 0o755)
	must(os.Symlink(fmt.Sprintf("libfoo.so.1.%d", v), filepath.Join(dir, "usr/lib/libfoo.so.1")))
	write("usr/share/app/data.bin", dataFile(4, 600<<10, v), 0o644)
	write("usr/share/app/static.bin", dataFile(5, 100<<10, 1), 0o644)
	write("usr/etc/app.conf", []byte(fmt.Sprintf("# app config\nversion=%d\n", v)), 0o644)
	toolMode := os.FileMode(0o755)
	if v > 1 {
		toolMode = 0o700
	}
	write("usr/bin/tool", []byte("#!/bin/sh\necho tool\n"), toolMode)
	if v == 1 {
		write("usr/share/doc/OLD-NEWS", []byte("old news\n"), 0o644)
	} else {
		write("usr/share/doc/NEWS", []byte(fmt.Sprintf("news for %d\n", v)), 0o644)
	}
	r := rand.New(rand.NewSource(9))
	for i := 0; i < 40; i++ {
		b := make([]byte, 100+r.Intn(2000))
		r.Read(b)
		if i%10 == 0 {
			b = append(b, byte(v))
		}
		write(fmt.Sprintf("usr/share/locale/m%02d.mo", i), b, 0o644)
	}
	must(os.MkdirAll(filepath.Join(dir, "var/empty"), 0o755))
	must(unix.Setxattr(filepath.Join(dir, "usr/etc/app.conf"), "user.origin", []byte("fixture"), 0))
}
