// Command repo-bench compares os-update with the ostree command on the
// repository core: commit into archive and bare repositories, checkout from
// bare, and fsck, on a generated tree of (by default) 20,000 files and
// 500 MB with hardlinks and symlinks. Both tools run as child processes in
// the same run; wall time and peak RSS come from the kernel's accounting.
//
//	go run ./bench/repo -dir /var/tmp/bench -files 20000 -mb 500
package main

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type result struct {
	wall   time.Duration
	maxRSS int64 // KiB
}

func run(name string, args ...string) (result, error) {
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = nil, &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return result{}, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return result{wall: wall, maxRSS: ru.Maxrss}, nil
}

// generate writes a tree that looks like an OS: many small files, some
// medium and a few large ones, half of each file compressible text and
// half random bytes, plus hardlinks and symlinks.
func generate(root string, files int, totalMB int) (int64, error) {
	rng := rand.New(rand.NewSource(42))
	if err := os.MkdirAll(root, 0o755); err != nil {
		return 0, err
	}
	// Size classes: 85% small, 14.5% medium, 0.5% large, scaled to totalMB.
	sizes := make([]int, files)
	var sum int64
	for i := range sizes {
		switch p := rng.Float64(); {
		case p < 0.85:
			sizes[i] = 512 + rng.Intn(7*1024)
		case p < 0.995:
			sizes[i] = 32*1024 + rng.Intn(160*1024)
		default:
			sizes[i] = 1<<20 + rng.Intn(4<<20)
		}
		sum += int64(sizes[i])
	}
	scale := float64(int64(totalMB)<<20) / float64(sum)
	words := []byte("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ")
	var written int64
	for i, sz := range sizes {
		sz = int(float64(sz) * scale)
		dir := filepath.Join(root, "usr", fmt.Sprintf("d%02d", i%97), fmt.Sprintf("s%02d", i%13))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return 0, err
		}
		buf := make([]byte, sz)
		half := sz / 2
		for j := 0; j < half; j++ {
			buf[j] = words[(j+i)%len(words)]
		}
		rng.Read(buf[half:])
		mode := os.FileMode(0o644)
		if i%10 == 0 {
			mode = 0o755
		}
		p := filepath.Join(dir, fmt.Sprintf("f%05d", i))
		if err := os.WriteFile(p, buf, mode); err != nil {
			return 0, err
		}
		written += int64(sz)
		switch {
		case i%200 == 1:
			if err := os.Link(p, p+".hardlink"); err != nil {
				return 0, err
			}
		case i%100 == 2:
			if err := os.Symlink(filepath.Base(p), p+".symlink"); err != nil {
				return 0, err
			}
		}
	}
	return written, nil
}

func main() {
	dir := flag.String("dir", "/var/tmp/os-update-bench-repo", "work directory (removed first)")
	files := flag.Int("files", 20000, "number of files")
	mb := flag.Int("mb", 500, "total size in MB")
	osu := flag.String("os-update", "", "os-update binary (default: build it)")
	rounds := flag.Int("rounds", 1, "repetitions; the best time of each is reported")
	flag.Parse()

	os.RemoveAll(*dir)
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fail(err)
	}
	if *osu == "" {
		*osu = filepath.Join(*dir, "os-update")
		b := exec.Command("go", "build", "-o", *osu, "./cmd/os-update")
		b.Stderr = os.Stderr
		if err := b.Run(); err != nil {
			fail(err)
		}
	}
	tree := filepath.Join(*dir, "tree")
	n, err := generate(tree, *files, *mb)
	if err != nil {
		fail(err)
	}
	fmt.Printf("tree: %d files, %.0f MB, hardlinks and symlinks; %d round(s)\n\n", *files, float64(n)/1e6, *rounds)

	type op struct {
		name      string
		ours, ref func(round int) []string // argv
		setup     func(round int)
	}
	p := func(parts ...string) string { return filepath.Join(append([]string{*dir}, parts...)...) }
	mustInit := func(name, mode string, round int) {
		os.RemoveAll(p(fmt.Sprintf("%s%d", name, round)))
	}
	ops := []op{
		{name: "commit (archive)",
			setup: func(r int) {
				mustInit("o-archive", "archive", r)
				mustInit("r-archive", "archive", r)
				exec.Command(*osu, "repo", "init", "--repo", p(fmt.Sprint("o-archive", r)), "--mode", "archive").Run()
				exec.Command("ostree", "init", "--repo="+p(fmt.Sprint("r-archive", r)), "--mode=archive").Run()
			},
			ours: func(r int) []string {
				return []string{*osu, "repo", "commit", "--repo", p(fmt.Sprint("o-archive", r)), "-b", "bench", "--tree=dir=" + tree}
			},
			ref: func(r int) []string {
				return []string{"ostree", "commit", "--repo=" + p(fmt.Sprint("r-archive", r)), "-b", "bench", "--tree=dir=" + tree}
			}},
		{name: "commit (bare)",
			setup: func(r int) {
				mustInit("o-bare", "bare", r)
				mustInit("r-bare", "bare", r)
				exec.Command(*osu, "repo", "init", "--repo", p(fmt.Sprint("o-bare", r)), "--mode", "bare").Run()
				exec.Command("ostree", "init", "--repo="+p(fmt.Sprint("r-bare", r)), "--mode=bare").Run()
			},
			ours: func(r int) []string {
				return []string{*osu, "repo", "commit", "--repo", p(fmt.Sprint("o-bare", r)), "-b", "bench", "--tree=dir=" + tree}
			},
			ref: func(r int) []string {
				return []string{"ostree", "commit", "--repo=" + p(fmt.Sprint("r-bare", r)), "-b", "bench", "--tree=dir=" + tree}
			}},
		{name: "checkout (bare, hardlinks)",
			setup: func(r int) {
				os.RemoveAll(p(fmt.Sprint("o-co", r)))
				os.RemoveAll(p(fmt.Sprint("r-co", r)))
			},
			ours: func(r int) []string {
				return []string{*osu, "repo", "checkout", "--repo", p(fmt.Sprint("o-bare", r)), "bench", p(fmt.Sprint("o-co", r))}
			},
			ref: func(r int) []string {
				return []string{"ostree", "checkout", "--repo=" + p(fmt.Sprint("r-bare", r)), "bench", p(fmt.Sprint("r-co", r))}
			}},
		{name: "fsck (archive)",
			ours: func(r int) []string {
				return []string{*osu, "repo", "fsck", "-q", "--repo", p(fmt.Sprint("o-archive", r))}
			},
			ref: func(r int) []string {
				return []string{"ostree", "fsck", "-q", "--repo=" + p(fmt.Sprint("r-archive", r))}
			}},
		{name: "fsck (bare)",
			ours: func(r int) []string {
				return []string{*osu, "repo", "fsck", "-q", "--repo", p(fmt.Sprint("o-bare", r))}
			},
			ref: func(r int) []string { return []string{"ostree", "fsck", "-q", "--repo=" + p(fmt.Sprint("r-bare", r))} }},
	}
	fmt.Printf("| operation | os-update | ostree | speed-up | peak RSS os-update | peak RSS ostree |\n|---|---|---|---|---|---|\n")
	for _, o := range ops {
		var best [2]result
		for r := 0; r < *rounds; r++ {
			if o.setup != nil {
				o.setup(r)
			}
			syscall.Sync()
			// Alternate which tool goes first to even out cache effects.
			order := []int{0, 1}
			if r%2 == 1 {
				order = []int{1, 0}
			}
			for _, which := range order {
				argv := o.ours(r)
				if which == 1 {
					argv = o.ref(r)
				}
				res, err := run(argv[0], argv[1:]...)
				if err != nil {
					fail(err)
				}
				if best[which].wall == 0 || res.wall < best[which].wall {
					best[which].wall = res.wall
				}
				if res.maxRSS > best[which].maxRSS {
					best[which].maxRSS = res.maxRSS
				}
			}
		}
		fmt.Printf("| %s | %.2f s | %.2f s | %.2fx | %d MB | %d MB |\n", o.name,
			best[0].wall.Seconds(), best[1].wall.Seconds(), best[1].wall.Seconds()/best[0].wall.Seconds(),
			best[0].maxRSS/1024, best[1].maxRSS/1024)
	}
	// Same content, same checksums: the two bare repositories hold the same
	// root tree.
	ours, _ := exec.Command("ostree", "ls", "--repo="+p("o-bare0"), "-C", "-d", "bench", "/").Output()
	theirs, _ := exec.Command("ostree", "ls", "--repo="+p("r-bare0"), "-C", "-d", "bench", "/").Output()
	fmt.Printf("\nroot dirtree identical in both repositories: %v\n", bytes.Equal(ours, theirs) && len(ours) > 0)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "repo-bench:", err)
	os.Exit(1)
}
