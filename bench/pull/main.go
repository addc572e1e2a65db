// Command pull-bench compares `os-update repo pull` with `ostree pull` over
// loopback: a fresh pull of a generated tree (by default 20,000 files) into
// a bare repository, then an incremental pull of a commit that changes 5%
// of the files, in several rounds (fresh repositories each time, the tool
// that goes first alternating); medians are reported. Both clients pull from the same `os-update repo serve`
// process, run as child processes in the same run, with no static deltas
// and no signatures (both tools verify the same checksums either way).
// Wall time and peak RSS come from the kernel's accounting of each child.
//
//	go run ./bench/pull -dir /var/tmp/pullbench -files 20000 -mb 300 -rounds 3
package main

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

type result struct {
	wall   time.Duration
	cpu    time.Duration // user + system
	maxRSS int64         // KiB
}

func run(name string, args ...string) (result, error) {
	cmd := exec.Command(name, args...)
	var stderr, stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return result{}, fmt.Errorf("%s %s: %v: %s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return result{wall: wall, cpu: cpu, maxRSS: ru.Maxrss}, nil
}

func must(r result, err error) result {
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	return r
}

// generate writes an OS-like tree: mostly small files, some medium, a few
// large, each half text and half random bytes, in ~1,300 directories.
func generate(root string, files, totalMB int, rng *rand.Rand) ([]string, error) {
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
	var paths []string
	for i, sz := range sizes {
		rel := filepath.Join("usr", fmt.Sprintf("d%02d", i%97), fmt.Sprintf("s%02d", i%13), fmt.Sprintf("f%05d", i))
		if err := writeFile(filepath.Join(root, rel), int(float64(sz)*scale), int64(i), rng); err != nil {
			return nil, err
		}
		paths = append(paths, rel)
	}
	return paths, nil
}

func writeFile(p string, size int, seed int64, rng *rand.Rand) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	words := []byte("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ")
	buf := make([]byte, size)
	half := size / 2
	for j := 0; j < half; j++ {
		buf[j] = words[(j+int(seed))%len(words)]
	}
	rng.Read(buf[half:])
	return os.WriteFile(p, buf, 0o644)
}

func main() {
	dir := flag.String("dir", "/var/tmp/pullbench", "work directory (removed first)")
	files := flag.Int("files", 20000, "files in the tree")
	mb := flag.Int("mb", 300, "total size of the tree in MiB")
	changed := flag.Float64("changed", 0.05, "fraction of files changed by the second commit")
	bin := flag.String("os-update", "", "os-update binary (default: build ./cmd/os-update)")
	workers := flag.Int("workers", 16, "os-update pull workers (its default)")
	rounds := flag.Int("rounds", 3, "rounds (the median is reported)")
	flag.Parse()

	os.RemoveAll(*dir)
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fail(err)
	}
	if *bin == "" {
		*bin = filepath.Join(*dir, "os-update")
		must(run("go", "build", "-o", *bin, "./cmd/os-update"))
	}
	tree := filepath.Join(*dir, "tree")
	served := filepath.Join(*dir, "served")
	rng := rand.New(rand.NewSource(7))
	fmt.Printf("generating %d files, %d MiB ...\n", *files, *mb)
	paths, err := generate(tree, *files, *mb, rng)
	if err != nil {
		fail(err)
	}
	must(run(*bin, "repo", "init", "--repo", served, "--mode=archive"))
	must(run(*bin, "repo", "commit", "--repo", served, "--branch", "v1", "--subject", "v1", tree))
	// v2 changes a fraction of the files; an incremental pull is a pull
	// of v2 into a repository that has v1.
	n := int(float64(len(paths)) * *changed)
	for _, i := range rng.Perm(len(paths))[:n] {
		st, err := os.Stat(filepath.Join(tree, paths[i]))
		if err != nil {
			fail(err)
		}
		if err := writeFile(filepath.Join(tree, paths[i]), int(st.Size()), int64(i)+1000003, rng); err != nil {
			fail(err)
		}
	}
	must(run(*bin, "repo", "commit", "--repo", served, "--branch", "v2", "--subject", "v2", tree))
	must(run(*bin, "repo", "summary", "--repo", served, "--update"))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := exec.Command(*bin, "repo", "serve", "--repo", served, "--addr", addr)
	if err := srv.Start(); err != nil {
		fail(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i > 500 {
			fail(fmt.Errorf("server did not start"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	url := "http://" + addr

	type sample struct{ fresh, incr result }
	oursRuns := []sample{}
	theirsRuns := []sample{}
	for round := 0; round < *rounds; round++ {
		ours := filepath.Join(*dir, fmt.Sprintf("ours%d", round))
		theirs := filepath.Join(*dir, fmt.Sprintf("ostree%d", round))
		must(run(*bin, "repo", "init", "--repo", ours, "--mode=bare"))
		must(run(*bin, "repo", "remote", "add", "--repo", ours, "--no-gpg-verify", "origin", url))
		must(run("ostree", "--repo="+theirs, "init", "--mode=bare"))
		must(run("ostree", "--repo="+theirs, "remote", "add", "--no-gpg-verify", "origin", url))
		pullOurs := func(ref string) result {
			return must(run(*bin, "repo", "pull", "--repo", ours, "--quiet", "--disable-static-deltas", "--workers", fmt.Sprint(*workers), "origin", ref))
		}
		pullTheirs := func(ref string) result {
			return must(run("ostree", "--repo="+theirs, "pull", "--disable-static-deltas", "origin", ref))
		}
		var o, t sample
		// Alternate who goes first: the second pull finds warmer caches.
		if round%2 == 0 {
			o.fresh, t.fresh = pullOurs("v1"), pullTheirs("v1")
			o.incr, t.incr = pullOurs("v2"), pullTheirs("v2")
		} else {
			t.fresh, o.fresh = pullTheirs("v1"), pullOurs("v1")
			t.incr, o.incr = pullTheirs("v2"), pullOurs("v2")
		}
		if round == 0 {
			// Each tool's result passes the other tool's fsck.
			must(run("ostree", "--repo="+ours, "fsck"))
			must(run(*bin, "repo", "fsck", "--repo", theirs))
		}
		os.RemoveAll(ours)
		os.RemoveAll(theirs)
		oursRuns, theirsRuns = append(oursRuns, o), append(theirsRuns, t)
		fmt.Printf("round %d: fresh %.2fs (cpu %.2fs) vs %.2fs (cpu %.2fs), incremental %.2fs vs %.2fs\n", round+1,
			o.fresh.wall.Seconds(), o.fresh.cpu.Seconds(), t.fresh.wall.Seconds(), t.fresh.cpu.Seconds(), o.incr.wall.Seconds(), t.incr.wall.Seconds())
	}
	median := func(xs []sample, pick func(sample) result) result {
		rs := make([]result, len(xs))
		for i, x := range xs {
			rs[i] = pick(x)
		}
		sort.Slice(rs, func(i, j int) bool { return rs[i].wall < rs[j].wall })
		m := rs[len(rs)/2]
		for _, r := range rs {
			if r.maxRSS > m.maxRSS {
				m.maxRSS = r.maxRSS // report the peak over all rounds
			}
		}
		return m
	}
	fresh := func(s sample) result { return s.fresh }
	incr := func(s sample) result { return s.incr }

	fmt.Printf("\npull over loopback, %d files / %d MiB, bare target, fsync on (defaults), os-update %d workers; median of %d rounds, peak RSS over all\n", *files, *mb, *workers, *rounds)
	fmt.Printf("%-28s %10s %10s %8s %10s %10s %12s %12s\n", "", "os-update", "ostree", "speedup", "CPU ours", "CPU ostree", "RSS ours", "RSS ostree")
	row := func(name string, a, b result) {
		fmt.Printf("%-28s %9.2fs %9.2fs %7.2fx %9.2fs %9.2fs %9.1f MB %9.1f MB\n", name, a.wall.Seconds(), b.wall.Seconds(),
			b.wall.Seconds()/a.wall.Seconds(), a.cpu.Seconds(), b.cpu.Seconds(), float64(a.maxRSS)/1024, float64(b.maxRSS)/1024)
	}
	row("fresh pull", median(oursRuns, fresh), median(theirsRuns, fresh))
	row(fmt.Sprintf("incremental (%.0f%% changed)", *changed*100), median(oursRuns, incr), median(theirsRuns, incr))
	// Rounds are paired (run back to back), so the median of per-round
	// ratios is less sensitive to load changing on a shared machine.
	pairedRatio := func(pick func(sample) result) float64 {
		var rs []float64
		for i := range oursRuns {
			rs = append(rs, pick(theirsRuns[i]).wall.Seconds()/pick(oursRuns[i]).wall.Seconds())
		}
		sort.Float64s(rs)
		return rs[len(rs)/2]
	}
	fmt.Printf("median of per-round speedups: fresh %.2fx, incremental %.2fx\n", pairedRatio(fresh), pairedRatio(incr))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}
