// Command compose-bench measures `compose tree` end to end: it generates a
// repository of N packages (default 300, ~200 MB in total), serves it on
// 127.0.0.1, composes it into a fresh archive repository, and reports the
// time per phase (download, solve, unpack, scripts, commit), then the time
// of a no-change recompose. Run as root (scriptlets use bubblewrap).
//
//	go run ./bench/compose [-n 300] [-mb 200] [-scripts 30] [-dir DIR]
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/google/rpmpack"

	"github.com/osupdate/os-update/bench/internal/benchutil"

	"github.com/osupdate/os-update/compose"
	"github.com/osupdate/os-update/repo"
)

func main() {
	n := flag.Int("n", 300, "number of generated packages")
	mb := flag.Int("mb", 200, "total payload size in MB")
	scripts := flag.Int("scripts", 30, "packages with a %post scriptlet")
	dir := flag.String("dir", "", "work directory (default: a temporary one, removed at exit)")
	mode := flag.String("mode", "archive", "repository mode")
	workers := flag.Int("workers", 4, "compose download/commit workers")
	flag.Parse()
	if err := run(*n, *mb, *scripts, *dir, *mode, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "compose-bench:", err)
		os.Exit(1)
	}
}

func run(n, mb, nscripts int, dir, mode string, workers int) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "compose-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	pkgDir := filepath.Join(dir, "rpms", "Packages")
	if err := os.MkdirAll(pkgDir, 0o755); err != nil {
		return err
	}
	t0 := time.Now()
	total, err := generate(pkgDir, n, int64(mb)<<20, nscripts)
	if err != nil {
		return err
	}
	if out, err := exec.Command("createrepo_c", "--quiet", "--no-database", filepath.Join(dir, "rpms")).CombinedOutput(); err != nil {
		return fmt.Errorf("createrepo_c: %v\n%s", err, out)
	}
	fmt.Printf("generated %d packages + shell, %.1f MB of RPMs, in %s (not part of the figures)\n", n, float64(total)/(1<<20), time.Since(t0).Round(time.Millisecond))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(filepath.Join(dir, "rpms")))}
	go srv.Serve(ln)
	defer srv.Close()

	cfg := filepath.Join(dir, "config")
	os.MkdirAll(cfg, 0o755)
	os.WriteFile(filepath.Join(cfg, "bench.repo"), []byte("[bench]\nbaseurl=http://"+ln.Addr().String()+"\ngpgcheck=0\n"), 0o644)
	var tf strings.Builder
	tf.WriteString("ref: bench/x86_64/os\nrepos: [bench]\nautomatic-version-prefix: \"1\"\npackages:\n  - shell\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&tf, "  - bench-%03d\n", i)
	}
	treefile := filepath.Join(cfg, "tree.yaml")
	os.WriteFile(treefile, []byte(tf.String()), 0o644)

	m, err := repo.ParseMode(mode)
	if err != nil {
		return err
	}
	r, err := repo.Init(filepath.Join(dir, "repo"), m)
	if err != nil {
		return err
	}
	defer r.Close()
	opts := compose.Options{Treefile: treefile, Repo: r, CacheDir: filepath.Join(dir, "cache"), Workers: workers}
	res, err := compose.Tree(context.Background(), opts)
	if err != nil {
		return err
	}
	t := res.Timings
	fmt.Printf("machine: %d CPUs (shared); repo mode %s; %d packages installed\n", runtime.NumCPU(), mode, len(res.Packages))
	fmt.Printf("compose:   total %8s\n", rd(t.Total))
	for _, p := range []struct {
		name string
		d    time.Duration
	}{{"metadata", t.Metadata}, {"solve", t.Solve}, {"download", t.Download}, {"unpack", t.Unpack},
		{"scripts", t.Scripts}, {"postprocess", t.Postprocess}, {"commit", t.Commit}} {
		fmt.Printf("  %-12s %8s\n", p.name, rd(p.d))
	}
	start := time.Now()
	res2, err := compose.Tree(context.Background(), opts)
	if err != nil {
		return err
	}
	if res2.Changed {
		return fmt.Errorf("recompose made a new commit")
	}
	fmt.Printf("no-change recompose: %s (commit %s)\n", rd(time.Since(start)), res.Commit[:12])
	return nil
}

func rd(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// generate writes the shell package and n bench packages whose payloads
// add up to about total bytes: each has a few files of incompressible
// and text data, a chain dependency on the previous package, a versioned
// dependency on a library-like package, and some have a %post.
func generate(dir string, n int, total int64, nscripts int) (int64, error) {
	if err := benchutil.WriteShellRPM(dir, map[string]string{"cat": "/bin/cat", "rm": "/bin/rm"}); err != nil {
		return 0, err
	}
	per := total / int64(n)
	var mu sync.Mutex
	var sum int64
	var firstErr error
	sem := make(chan struct{}, runtime.NumCPU())
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			size, err := writeBench(dir, i, per, i%max(1, n/max(1, nscripts)) == 0 && i/max(1, n/max(1, nscripts)) < nscripts)
			mu.Lock()
			defer mu.Unlock()
			sum += size
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	return sum, firstErr
}

func writeBench(dir string, i int, size int64, post bool) (int64, error) {
	md := benchutil.RPMMeta(fmt.Sprintf("bench-%03d", i), "1.0")
	if i > 0 {
		md.Requires = append(md.Requires, &rpmpack.Relation{Name: fmt.Sprintf("bench-%03d", i-1), Version: "1.0", Sense: rpmpack.SenseGreater | rpmpack.SenseEqual})
	}
	if post {
		md.Requires = append(md.Requires, &rpmpack.Relation{Name: "/bin/sh"})
	}
	p, err := rpmpack.NewRPM(md)
	if err != nil {
		return 0, err
	}
	rng := rand.New(rand.NewPCG(uint64(i), 42))
	base := fmt.Sprintf("/usr/share/bench-%03d", i)
	// Three incompressible files and one of text, sized so that the
	// package file is about size bytes.
	for f := 0; f < 4; f++ {
		body := make([]byte, size/3)
		if f < 3 {
			for j := range body {
				body[j] = byte(rng.Uint32())
			}
		} else {
			line := []byte(fmt.Sprintf("package %d file %d: some configuration text that repeats\n", i, f))
			for j := range body {
				body[j] = line[j%len(line)]
			}
		}
		p.AddFile(rpmpack.RPMFile{Name: fmt.Sprintf("%s/data%d", base, f), Body: body, Mode: 0o100644, Owner: "root", Group: "root"})
	}
	p.AddFile(rpmpack.RPMFile{Name: fmt.Sprintf("/etc/bench-%03d.conf", i), Body: []byte("enabled=1\n"), Mode: 0o100644, Owner: "root", Group: "root"})
	p.AddFile(rpmpack.RPMFile{Name: fmt.Sprintf("/var/lib/bench-%03d", i), Mode: 0o40755, Owner: "root", Group: "root"})
	if post {
		p.AddPostin(fmt.Sprintf("echo configured > %s/post-ran\n", base))
	}
	return benchutil.WriteRPM(p, filepath.Join(dir, md.Name+"-1.0-1.noarch.rpm"))
}
