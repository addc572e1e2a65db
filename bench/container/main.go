// Command container-bench compares the two ways a host can receive the same
// commits: as an ostree-ext container image from a registry (Debian's
// docker-registry on 127.0.0.1) and by static delta from `os-update repo
// serve`. A generated tree (default 20,000 files) is v1, the same with 5% of
// its files changed is v2. Each round imports v1 then v2 from the registry
// into a fresh bare repository (`repo container import`), and pulls v1 (by a
// from-scratch delta) then v2 (by the v1→v2 delta) into another
// (`repo pull`). Bytes are counted by a proxy in front of each server;
// times and peak RSS are the kernel's accounting of each child. Both ways
// end with the same commit checksum, checked every round, so what a host
// does next (deploy) is the same work either way.
//
//	go run ./bench/container -dir /var/tmp/containerbench -files 20000 -mb 300 -rounds 3
package main

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/osupdate/os-update/bench/internal/benchutil"
)

type step struct {
	r     benchutil.Result
	bytes int64
}

func main() {
	dir := flag.String("dir", "/var/tmp/containerbench", "work directory (removed first)")
	files := flag.Int("files", 20000, "files in the tree")
	mb := flag.Int("mb", 300, "total size of the tree in MiB")
	changed := flag.Float64("changed", 0.05, "fraction of files changed by v2")
	rounds := flag.Int("rounds", 3, "rounds (the median is reported)")
	flag.Parse()
	registry, err := exec.LookPath("docker-registry")
	if err != nil {
		benchutil.Fail(fmt.Errorf("docker-registry not found (apt-get install docker-registry): %w", err))
	}

	os.RemoveAll(*dir)
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		benchutil.Fail(err)
	}
	bin := filepath.Join(*dir, "os-update")
	benchutil.Must(benchutil.Run("go", "build", "-o", bin, "./cmd/os-update"))
	osu := func(args ...string) benchutil.Result { return benchutil.Must(benchutil.Run(bin, args...)) }

	// The two commits, bootable (an image without a kernel is refused).
	tree := filepath.Join(*dir, "tree")
	served := filepath.Join(*dir, "served")
	rng := rand.New(rand.NewSource(7))
	fmt.Printf("generating %d files, %d MiB ...\n", *files, *mb)
	paths, err := benchutil.Generate(tree, *files, *mb, rng)
	if err != nil {
		benchutil.Fail(err)
	}
	for name, content := range map[string]string{
		"usr/lib/modules/6.1.0/vmlinuz":       "kernel\n",
		"usr/lib/modules/6.1.0/initramfs.img": "initramfs\n",
		"usr/lib/os-release":                  "ID=benchos\n",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(tree, name)), 0o755)
		if err := os.WriteFile(filepath.Join(tree, name), []byte(content), 0o644); err != nil {
			benchutil.Fail(err)
		}
	}
	osu("repo", "init", "--repo", served, "--mode=archive")
	v1 := strings.TrimSpace(osu("repo", "commit", "--repo", served, "--branch", "os/v1", "--subject", "v1", tree).Stdout)
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
	v2 := strings.TrimSpace(osu("repo", "commit", "--repo", served, "--branch", "os/v2", "--subject", "v2", tree).Stdout)
	osu("repo", "delta", "generate", "--repo", served, "--empty", "--to", "os/v1")
	osu("repo", "delta", "generate", "--repo", served, "--from", "os/v1", "--to", "os/v2")
	osu("repo", "summary", "--repo", served, "--update")

	// The registry and the repository server, each behind a counting proxy.
	regAddr, err := benchutil.FreeAddr()
	if err != nil {
		benchutil.Fail(err)
	}
	cfg := filepath.Join(*dir, "registry.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n",
		filepath.Join(*dir, "registry"), regAddr)), 0o644)
	reg := exec.Command(registry, "serve", cfg)
	if err := reg.Start(); err != nil {
		benchutil.Fail(err)
	}
	defer func() { reg.Process.Kill(); reg.Wait() }()
	repoAddr, err := benchutil.FreeAddr()
	if err != nil {
		benchutil.Fail(err)
	}
	srv := exec.Command(bin, "repo", "serve", "--repo", served, "--addr", repoAddr)
	if err := srv.Start(); err != nil {
		benchutil.Fail(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	for _, a := range []string{regAddr, repoAddr} {
		if err := benchutil.WaitListen(a, 30*time.Second); err != nil {
			benchutil.Fail(err)
		}
	}
	regProxy, err := benchutil.NewCountingProxy("http://" + regAddr)
	if err != nil {
		benchutil.Fail(err)
	}
	defer regProxy.Close()
	repoProxy, err := benchutil.NewCountingProxy("http://" + repoAddr)
	if err != nil {
		benchutil.Fail(err)
	}
	defer repoProxy.Close()

	// Publish both images (through the proxy, which is loopback too).
	image := func(tag string) string { return "docker://" + regProxy.Addr + "/benchos:" + tag }
	osu("compose", "container-encapsulate", "--repo", served, "--insecure", "os/v1", image("v1"))
	osu("compose", "container-encapsulate", "--repo", served, "--insecure", "os/v2", image("v2"))
	regProxy.Take()

	var imp1, imp2, pull1, pull2 []step
	for round := 0; round < *rounds; round++ {
		byImage := filepath.Join(*dir, fmt.Sprintf("image%d", round))
		byDelta := filepath.Join(*dir, fmt.Sprintf("delta%d", round))
		osu("repo", "init", "--repo", byImage, "--mode=bare")
		osu("repo", "init", "--repo", byDelta, "--mode=bare")
		osu("repo", "remote", "add", "--repo", byDelta, "--no-gpg-verify", "origin", "http://"+repoProxy.Addr)
		importImage := func(tag, want string) step {
			r := osu("repo", "container", "import", "--repo", byImage, "--insecure", "--quiet", "--ref", "os/"+tag, image(tag))
			if got := strings.TrimSpace(r.Stdout); got != want {
				benchutil.Fail(fmt.Errorf("import %s gave commit %q, want %s", tag, got, want))
			}
			return step{r, regProxy.Take()}
		}
		pullDelta := func(ref, want string) step {
			r := osu("repo", "pull", "--repo", byDelta, "--quiet", "origin", ref)
			if got := strings.TrimSpace(osu("repo", "rev-parse", "--repo", byDelta, "origin:"+ref).Stdout); got != want {
				benchutil.Fail(fmt.Errorf("pull %s gave commit %q, want %s", ref, got, want))
			}
			return step{r, repoProxy.Take()}
		}
		// Alternate who goes first: the second finds warmer caches.
		var a1, a2, b1, b2 step
		if round%2 == 0 {
			a1, b1 = importImage("v1", v1), pullDelta("os/v1", v1)
			a2, b2 = importImage("v2", v2), pullDelta("os/v2", v2)
		} else {
			b1, a1 = pullDelta("os/v1", v1), importImage("v1", v1)
			b2, a2 = pullDelta("os/v2", v2), importImage("v2", v2)
		}
		imp1, imp2, pull1, pull2 = append(imp1, a1), append(imp2, a2), append(pull1, b1), append(pull2, b2)
		fmt.Printf("round %d: v1 image %.2fs %d B, delta %.2fs %d B; v2 image %.2fs %d B, delta %.2fs %d B\n", round+1,
			a1.r.Wall.Seconds(), a1.bytes, b1.r.Wall.Seconds(), b1.bytes, a2.r.Wall.Seconds(), a2.bytes, b2.r.Wall.Seconds(), b2.bytes)
		os.RemoveAll(byImage)
		os.RemoveAll(byDelta)
	}
	median := func(xs []step) step {
		s := append([]step(nil), xs...)
		sort.Slice(s, func(i, j int) bool { return s[i].r.Wall < s[j].r.Wall })
		m := s[len(s)/2]
		for _, x := range xs {
			m.r.MaxRSS = max(m.r.MaxRSS, x.r.MaxRSS)
		}
		return m
	}
	fmt.Printf("\n%d files / %d MiB, v2 changes %.0f%% of the files; bare target, fsync on; median of %d rounds, peak RSS over all\n",
		*files, *mb, *changed*100, *rounds)
	fmt.Printf("%-34s %10s %14s %10s\n", "", "time", "bytes", "peak RSS")
	row := func(name string, s step) {
		fmt.Printf("%-34s %9.2fs %14d %7.1f MB\n", name, s.r.Wall.Seconds(), s.bytes, float64(s.r.MaxRSS)/1024)
	}
	row("v1, container image", median(imp1))
	row("v1, static delta (from scratch)", median(pull1))
	row("v2 after v1, container image", median(imp2))
	row("v2 after v1, static delta", median(pull2))
}
