// Command delta compares static deltas made and applied by os-update with
// those of `ostree static-delta`, on the same commit pairs: delta size,
// generation time, apply time, and the ratio to the size of the target
// commit fetched object by object.
//
// Usage (as root, from the module root):
//
//	go run ./bench/delta [-work DIR] [-pairs synthetic,gobuild] [-old-rev REV]
//
// Pairs:
//   - synthetic: an OS-like tree of pseudo-binaries (code-shaped bytes with
//     relative call addresses) recompiled with small source changes,
//     a renamed versioned library, data files with a rewritten region,
//     files added and removed, a mode change.
//   - gobuild: real binaries: the os-update command built from an older
//     commit of this repository (-old-rev, via `git archive`) and from the
//     working tree, next to an unchanged sample of /usr/bin.
//
// Both tools run on the same archive repository content (ostree's copy is
// made with `ostree pull-local`), and both apply into bare repositories
// that already hold the source commit, with their default fsync settings.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/delta"
	"github.com/osupdate/os-update/repo/object"
)

func main() {
	work := flag.String("work", "", "scratch directory (default: a new temporary directory, removed at the end)")
	pairs := flag.String("pairs", "synthetic,gobuild", "comma-separated commit pairs to measure")
	oldRev := flag.String("old-rev", "HEAD~5", "git revision of the older os-update build for the gobuild pair")
	flag.Parse()
	if err := run(*work, strings.Split(*pairs, ","), *oldRev); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(work string, pairs []string, oldRev string) error {
	if work == "" {
		d, err := os.MkdirTemp("", "delta-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		work = d
	}
	fmt.Printf("%-10s %-6s %12s %9s %9s %9s %9s\n", "pair", "tool", "delta bytes", "vs full", "vs walk", "gen s", "apply s")
	for _, p := range pairs {
		dir := filepath.Join(work, p)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		var v1, v2 string
		var err error
		switch p {
		case "synthetic":
			v1, v2, err = synthetic(dir)
		case "gobuild":
			v1, v2, err = gobuild(dir, oldRev)
		default:
			err = fmt.Errorf("unknown pair %q", p)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if err := measure(p, dir, v1, v2); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}

func sh(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func timed(f func() error) (float64, error) {
	start := time.Now()
	err := f()
	return time.Since(start).Seconds(), err
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// objectBytes sums the archive-mode sizes of the objects reachable from
// to that from does not reach: what an object-walk pull downloads.
func objectBytes(r *repo.Repo, from, to object.Checksum) (int64, error) {
	have := repo.Reachable{}
	if !from.IsZero() {
		if err := r.TraverseCommit(from, 0, have); err != nil {
			return 0, err
		}
	}
	want := repo.Reachable{}
	if err := r.TraverseCommit(to, 0, want); err != nil {
		return 0, err
	}
	var n int64
	for o := range want {
		if have.Has(o) {
			continue
		}
		fi, err := os.Stat(r.ObjectPath(o.Checksum, o.Type))
		if err != nil {
			return 0, err
		}
		n += fi.Size()
	}
	return n, nil
}

func measure(pair, dir, v1, v2 string) error {
	ctx := context.Background()
	srcPath := filepath.Join(dir, "ours")
	r, err := repo.Init(srcPath, repo.ModeArchive)
	if err != nil {
		return err
	}
	defer r.Close()
	a, err := r.CommitDir(ctx, v1, repo.CommitOptions{Branch: "os", Subject: "v1"})
	if err != nil {
		return err
	}
	b, err := r.CommitDir(ctx, v2, repo.CommitOptions{Branch: "os", Subject: "v2"})
	if err != nil {
		return err
	}
	theirs := filepath.Join(dir, "theirs")
	if _, err := sh("ostree", "--repo="+theirs, "init", "--mode=archive"); err != nil {
		return err
	}
	if _, err := sh("ostree", "--repo="+theirs, "pull-local", "--depth=1", srcPath, b.String()); err != nil {
		return err
	}
	full, err := objectBytes(r, object.Checksum{}, b)
	if err != nil {
		return err
	}
	walk, err := objectBytes(r, a, b)
	if err != nil {
		return err
	}
	fmt.Printf("%-10s full commit %d bytes (archive objects); object-walk update from v1 %d bytes\n", pair, full, walk)

	type result struct {
		size       int64
		gen, apply float64
	}
	res := map[string]result{}
	for _, tool := range []string{"ours", "ostree"} {
		var rs result
		name := delta.Name{From: a, To: b}
		scratch := delta.Name{To: a}
		client := filepath.Join(dir, "client-"+tool)
		switch tool {
		case "ours":
			// The from-empty delta only seeds the client; no fallbacks,
			// since offline apply cannot fetch them.
			if _, err := delta.Generate(ctx, r, object.Checksum{}, a, delta.GenerateOptions{NoFallbacks: true}); err != nil {
				return err
			}
			if rs.gen, err = timed(func() error {
				_, err := delta.Generate(ctx, r, a, b, delta.GenerateOptions{})
				return err
			}); err != nil {
				return err
			}
			rs.size = dirSize(filepath.Join(srcPath, name.Dir()))
			cr, err := repo.Init(client, repo.ModeBare)
			if err != nil {
				return err
			}
			if _, _, err := delta.ApplyOffline(ctx, cr, filepath.Join(srcPath, scratch.Dir())); err != nil {
				return err
			}
			if rs.apply, err = timed(func() error {
				_, _, err := delta.ApplyOffline(ctx, cr, filepath.Join(srcPath, name.Dir()))
				return err
			}); err != nil {
				return err
			}
			cr.Close()
		case "ostree":
			if _, err := sh("ostree", "--repo="+theirs, "static-delta", "generate", "--min-fallback-size=100000", "--empty", "--to="+a.String()); err != nil {
				return err
			}
			if rs.gen, err = timed(func() error {
				_, err := sh("ostree", "--repo="+theirs, "static-delta", "generate", "--from="+a.String(), "--to="+b.String())
				return err
			}); err != nil {
				return err
			}
			rs.size = dirSize(filepath.Join(theirs, name.Dir()))
			if _, err := sh("ostree", "--repo="+client, "init", "--mode=bare"); err != nil {
				return err
			}
			if _, err := sh("ostree", "--repo="+client, "static-delta", "apply-offline", filepath.Join(theirs, scratch.Dir())); err != nil {
				return err
			}
			if rs.apply, err = timed(func() error {
				_, err := sh("ostree", "--repo="+client, "static-delta", "apply-offline", filepath.Join(theirs, name.Dir()))
				return err
			}); err != nil {
				return err
			}
		}
		res[tool] = rs
		fmt.Printf("%-10s %-6s %12d %8.2f%% %8.2f%% %9.2f %9.2f\n", pair, tool, rs.size,
			100*float64(rs.size)/float64(full), 100*float64(rs.size)/float64(walk), rs.gen, rs.apply)
	}
	o, t := res["ours"], res["ostree"]
	fmt.Printf("%-10s %-6s %11.3fx %9s %9s %8.3fx %8.3fx\n", pair, "ratio", float64(o.size)/float64(t.size), "", "", o.gen/t.gen, o.apply/t.apply)
	return nil
}

// pseudoBinary: see the test fixture in repo/delta; code-like bytes with
// rel32 calls, so one changed function moves every later call target.
func pseudoBinary(seed int64, nfuncs, version int) []byte {
	r := rand.New(rand.NewSource(seed))
	ops := []byte{0x48, 0x89, 0x8b, 0x83, 0xc3, 0x55, 0x5d, 0x31, 0xc0, 0x0f, 0x1f, 0x44, 0x00, 0x85, 0x74, 0x75}
	funcs := make([][]byte, nfuncs)
	for i := range funcs {
		b := make([]byte, 40+r.Intn(400))
		for j := range b {
			if r.Intn(4) == 0 {
				b[j] = byte(r.Intn(256))
			} else {
				b[j] = ops[r.Intn(len(ops))]
			}
		}
		funcs[i] = b
	}
	vr := rand.New(rand.NewSource(seed + int64(version)*7919))
	for v := 1; v < version; v++ {
		for k := 0; k < 3; k++ {
			i := vr.Intn(nfuncs)
			extra := make([]byte, 5+vr.Intn(40))
			vr.Read(extra)
			h := len(funcs[i]) / 2
			funcs[i] = append(append(append([]byte{}, funcs[i][:h]...), extra...), funcs[i][h:]...)
		}
	}
	offs := make([]int, nfuncs)
	pos := 0
	for i, f := range funcs {
		offs[i] = pos
		pos += len(f) + (len(f)/32)*5
	}
	out := make([]byte, 0, pos)
	cr := rand.New(rand.NewSource(seed + 1))
	for i, f := range funcs {
		for j := 0; j < len(f); j += 32 {
			out = append(out, f[j:min(j+32, len(f))]...)
			if j+32 <= len(f) {
				target := cr.Intn(nfuncs)
				out = append(out, 0xe8)
				out = binary.LittleEndian.AppendUint32(out, uint32(int32(offs[target]-(offs[i]+j))))
			}
		}
	}
	for i := 0; i < nfuncs/4; i++ {
		out = append(out, fmt.Sprintf("symbol_%d_%d\x00", seed, i)...)
	}
	return append(out, fmt.Sprintf("version %d\x00", version)...)
}

func write(root, rel string, data []byte, mode os.FileMode) error {
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

func synthetic(dir string) (string, string, error) {
	var roots []string
	for v := 1; v <= 2; v++ {
		root := filepath.Join(dir, fmt.Sprintf("v%d", v))
		roots = append(roots, root)
		files := map[string][]byte{}
		for i := 0; i < 20; i++ {
			files[fmt.Sprintf("usr/bin/prog%02d", i)] = pseudoBinary(int64(100+i), 1000+i*200, v)
		}
		for i := 0; i < 10; i++ {
			files[fmt.Sprintf("usr/lib/lib%02d.so.1.%d", i, v)] = pseudoBinary(int64(200+i), 2000, v)
		}
		data := make([]byte, 3<<20)
		rand.New(rand.NewSource(7)).Read(data)
		if v > 1 {
			rand.New(rand.NewSource(8)).Read(data[1<<20 : 1<<20+100<<10])
		}
		files["usr/share/app/data.bin"] = data
		r := rand.New(rand.NewSource(9))
		for i := 0; i < 300; i++ {
			b := make([]byte, 200+r.Intn(4000))
			r.Read(b)
			files[fmt.Sprintf("usr/share/misc/f%03d", i)] = b
		}
		if v == 1 {
			files["usr/share/doc/removed"] = []byte("gone in v2\n")
		} else {
			files["usr/share/doc/added"] = []byte("new in v2\n")
		}
		for rel, b := range files {
			mode := os.FileMode(0o644)
			if strings.HasPrefix(rel, "usr/bin") {
				mode = 0o755
			}
			if v > 1 && rel == "usr/bin/prog03" {
				mode = 0o700
			}
			if err := write(root, rel, b, mode); err != nil {
				return "", "", err
			}
		}
	}
	return roots[0], roots[1], nil
}

// gobuild builds os-update at oldRev and from the working tree, each next
// to the same sample of /usr/bin.
func gobuild(dir, oldRev string) (string, string, error) {
	top, err := sh("git", "rev-parse", "--show-toplevel")
	if err != nil {
		return "", "", err
	}
	top = strings.TrimSpace(top)
	oldSrc := filepath.Join(dir, "old-src")
	if err := os.MkdirAll(oldSrc, 0o755); err != nil {
		return "", "", err
	}
	if _, err := sh("sh", "-c", fmt.Sprintf("git -C %q archive %q | tar -x -C %q", top, oldRev, oldSrc)); err != nil {
		return "", "", err
	}
	var roots []string
	for i, src := range []string{oldSrc, top} {
		root := filepath.Join(dir, fmt.Sprintf("v%d", i+1))
		roots = append(roots, root)
		if err := os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755); err != nil {
			return "", "", err
		}
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(root, "usr/bin/os-update"), "./cmd/os-update")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go build in %s: %v: %s", src, err, out)
		}
		if err := copySample(root); err != nil {
			return "", "", err
		}
	}
	return roots[0], roots[1], nil
}

// copySample copies regular files of /usr/bin under 1 MB, in name order,
// up to 24 MB in total.
func copySample(root string) error {
	ents, err := os.ReadDir("/usr/bin")
	if err != nil {
		return err
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	var total int64
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > 1<<20 || e.Name() == "os-update" {
			continue
		}
		if total+fi.Size() > 24<<20 {
			break
		}
		in, err := os.Open(filepath.Join("/usr/bin", e.Name()))
		if err != nil {
			continue
		}
		out, err := os.OpenFile(filepath.Join(root, "usr/bin", e.Name()), os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
		if err == nil {
			_, err = io.Copy(out, in)
			out.Close()
		}
		in.Close()
		if err != nil {
			return err
		}
		total += fi.Size()
	}
	return nil
}
