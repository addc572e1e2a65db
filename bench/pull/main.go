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
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/osupdate/os-update/bench/internal/benchutil"
)

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
		benchutil.Fail(err)
	}
	if *bin == "" {
		*bin = filepath.Join(*dir, "os-update")
		benchutil.Must(benchutil.Run("go", "build", "-o", *bin, "./cmd/os-update"))
	}
	tree := filepath.Join(*dir, "tree")
	served := filepath.Join(*dir, "served")
	rng := rand.New(rand.NewSource(7))
	fmt.Printf("generating %d files, %d MiB ...\n", *files, *mb)
	paths, err := benchutil.Generate(tree, *files, *mb, rng)
	if err != nil {
		benchutil.Fail(err)
	}
	benchutil.Must(benchutil.Run(*bin, "repo", "init", "--repo", served, "--mode=archive"))
	benchutil.Must(benchutil.Run(*bin, "repo", "commit", "--repo", served, "--branch", "v1", "--subject", "v1", tree))
	// v2 changes a fraction of the files; an incremental pull is a pull
	// of v2 into a repository that has v1.
	n := int(float64(len(paths)) * *changed)
	for _, i := range rng.Perm(len(paths))[:n] {
		st, err := os.Stat(filepath.Join(tree, paths[i]))
		if err != nil {
			benchutil.Fail(err)
		}
		if err := benchutil.WriteFile(filepath.Join(tree, paths[i]), int(st.Size()), int64(i)+1000003, rng); err != nil {
			benchutil.Fail(err)
		}
	}
	benchutil.Must(benchutil.Run(*bin, "repo", "commit", "--repo", served, "--branch", "v2", "--subject", "v2", tree))
	benchutil.Must(benchutil.Run(*bin, "repo", "summary", "--repo", served, "--update"))

	addr, err := benchutil.FreeAddr()
	if err != nil {
		benchutil.Fail(err)
	}
	srv := exec.Command(*bin, "repo", "serve", "--repo", served, "--addr", addr)
	if err := srv.Start(); err != nil {
		benchutil.Fail(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	if err := benchutil.WaitListen(addr, 5*time.Second); err != nil {
		benchutil.Fail(err)
	}
	url := "http://" + addr

	type result = benchutil.Result
	type sample struct{ fresh, incr result }
	oursRuns := []sample{}
	theirsRuns := []sample{}
	for round := 0; round < *rounds; round++ {
		ours := filepath.Join(*dir, fmt.Sprintf("ours%d", round))
		theirs := filepath.Join(*dir, fmt.Sprintf("ostree%d", round))
		benchutil.Must(benchutil.Run(*bin, "repo", "init", "--repo", ours, "--mode=bare"))
		benchutil.Must(benchutil.Run(*bin, "repo", "remote", "add", "--repo", ours, "--no-gpg-verify", "origin", url))
		benchutil.Must(benchutil.Run("ostree", "--repo="+theirs, "init", "--mode=bare"))
		benchutil.Must(benchutil.Run("ostree", "--repo="+theirs, "remote", "add", "--no-gpg-verify", "origin", url))
		pullOurs := func(ref string) result {
			return benchutil.Must(benchutil.Run(*bin, "repo", "pull", "--repo", ours, "--quiet", "--disable-static-deltas", "--workers", fmt.Sprint(*workers), "origin", ref))
		}
		pullTheirs := func(ref string) result {
			return benchutil.Must(benchutil.Run("ostree", "--repo="+theirs, "pull", "--disable-static-deltas", "origin", ref))
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
			benchutil.Must(benchutil.Run("ostree", "--repo="+ours, "fsck"))
			benchutil.Must(benchutil.Run(*bin, "repo", "fsck", "--repo", theirs))
		}
		os.RemoveAll(ours)
		os.RemoveAll(theirs)
		oursRuns, theirsRuns = append(oursRuns, o), append(theirsRuns, t)
		fmt.Printf("round %d: fresh %.2fs (cpu %.2fs) vs %.2fs (cpu %.2fs), incremental %.2fs vs %.2fs\n", round+1,
			o.fresh.Wall.Seconds(), o.fresh.CPU.Seconds(), t.fresh.Wall.Seconds(), t.fresh.CPU.Seconds(), o.incr.Wall.Seconds(), t.incr.Wall.Seconds())
	}
	median := func(xs []sample, pick func(sample) result) result {
		rs := make([]result, len(xs))
		for i, x := range xs {
			rs[i] = pick(x)
		}
		sort.Slice(rs, func(i, j int) bool { return rs[i].Wall < rs[j].Wall })
		m := rs[len(rs)/2]
		for _, r := range rs {
			if r.MaxRSS > m.MaxRSS {
				m.MaxRSS = r.MaxRSS // report the peak over all rounds
			}
		}
		return m
	}
	fresh := func(s sample) result { return s.fresh }
	incr := func(s sample) result { return s.incr }

	fmt.Printf("\npull over loopback, %d files / %d MiB, bare target, fsync on (defaults), os-update %d workers; median of %d rounds, peak RSS over all\n", *files, *mb, *workers, *rounds)
	fmt.Printf("%-28s %10s %10s %8s %10s %10s %12s %12s\n", "", "os-update", "ostree", "speedup", "CPU ours", "CPU ostree", "RSS ours", "RSS ostree")
	row := func(name string, a, b result) {
		fmt.Printf("%-28s %9.2fs %9.2fs %7.2fx %9.2fs %9.2fs %9.1f MB %9.1f MB\n", name, a.Wall.Seconds(), b.Wall.Seconds(),
			b.Wall.Seconds()/a.Wall.Seconds(), a.CPU.Seconds(), b.CPU.Seconds(), float64(a.MaxRSS)/1024, float64(b.MaxRSS)/1024)
	}
	row("fresh pull", median(oursRuns, fresh), median(theirsRuns, fresh))
	row(fmt.Sprintf("incremental (%.0f%% changed)", *changed*100), median(oursRuns, incr), median(theirsRuns, incr))
	// Rounds are paired (run back to back), so the median of per-round
	// ratios is less sensitive to load changing on a shared machine.
	pairedRatio := func(pick func(sample) result) float64 {
		var rs []float64
		for i := range oursRuns {
			rs = append(rs, pick(theirsRuns[i]).Wall.Seconds()/pick(oursRuns[i]).Wall.Seconds())
		}
		sort.Float64s(rs)
		return rs[len(rs)/2]
	}
	fmt.Printf("median of per-round speedups: fresh %.2fx, incremental %.2fx\n", pairedRatio(fresh), pairedRatio(incr))
}
