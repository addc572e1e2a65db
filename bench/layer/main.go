// Command layer-bench measures package layering: it composes a bootable
// base of about F files (default 20,000, in N packages) into a sysroot's
// repository, then layers one small package with one dependency and a
// %post (served over HTTP on 127.0.0.1), deploys the derived commit, and
// prints the time of each stage (solve, fetch, checkout, unpack, scripts,
// commit, deploy). It then composes a new base and re-applies the request
// on it, as an upgrade does. Run as root on an otherwise idle machine.
//
//	go run ./bench/layer [-files 20000] [-per 100] [-dir DIR]
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/rpmpack"

	"github.com/osupdate/os-update/bench/internal/benchutil"

	"github.com/osupdate/os-update/compose"
	"github.com/osupdate/os-update/compose/layer"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/sysroot"
)

func main() {
	files := flag.Int("files", 20000, "files in the base")
	per := flag.Int("per", 100, "files per base package")
	dir := flag.String("dir", "", "work directory (default: a temporary one, removed at exit)")
	flag.Parse()
	if err := run(*files, *per, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "layer-bench:", err)
		os.Exit(1)
	}
}

func run(files, per int, dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("/var/tmp", "layer-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	n := max(1, files/per)
	pkgs := filepath.Join(dir, "rpms", "Packages")
	if err := os.MkdirAll(pkgs, 0o755); err != nil {
		return err
	}
	t0 := time.Now()
	if err := benchutil.WriteShellRPM(pkgs, nil); err != nil {
		return err
	}
	if err := writeKernel(pkgs); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := writeBase(pkgs, i, per, "1.0"); err != nil {
			return err
		}
	}
	// The upgrade's base: package 0 in a new version.
	if err := writeBase(pkgs, 0, per, "2.0"); err != nil {
		return err
	}
	small := benchutil.RPMMeta("small", "1.0")
	small.Requires = rpmpack.Relations{{Name: "small-dep"}, {Name: "/bin/sh"}}
	sp, _ := rpmpack.NewRPM(small)
	sp.AddFile(rpmpack.RPMFile{Name: "/usr/bin/small", Body: []byte("#!/bin/sh\necho small\n"), Mode: 0o100755, Owner: "root", Group: "root"})
	sp.AddPostin("echo configured > /usr/share/small-configured\n")
	if _, err := benchutil.WriteRPM(sp, filepath.Join(pkgs, "small-1.0-1.noarch.rpm")); err != nil {
		return err
	}
	dp, _ := rpmpack.NewRPM(benchutil.RPMMeta("small-dep", "1.0"))
	dp.AddFile(rpmpack.RPMFile{Name: "/usr/lib/small-dep.txt", Body: []byte("dep\n"), Mode: 0o100644, Owner: "root", Group: "root"})
	if _, err := benchutil.WriteRPM(dp, filepath.Join(pkgs, "small-dep-1.0-1.noarch.rpm")); err != nil {
		return err
	}
	if out, err := exec.Command("createrepo_c", "--quiet", "--no-database", filepath.Join(dir, "rpms")).CombinedOutput(); err != nil {
		return fmt.Errorf("createrepo_c: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(filepath.Join(dir, "rpms")))}
	go srv.Serve(ln)
	defer srv.Close()
	repoText := "[bench]\nbaseurl=http://" + ln.Addr().String() + "\ngpgcheck=0\n"
	cfg := filepath.Join(dir, "config")
	reposD := filepath.Join(dir, "yum.repos.d")
	os.MkdirAll(cfg, 0o755)
	os.MkdirAll(reposD, 0o755)
	os.WriteFile(filepath.Join(cfg, "bench.repo"), []byte(repoText), 0o644)
	os.WriteFile(filepath.Join(reposD, "bench.repo"), []byte(repoText), 0o644)

	sr := filepath.Join(dir, "sysroot")
	if err := sysroot.InitFS(sr); err != nil {
		return err
	}
	s, err := sysroot.Open(sr, sysroot.Options{MutableDeployments: true})
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.InitOS("bench"); err != nil {
		return err
	}
	ctx := context.Background()
	composeBase := func(lock string) (object.Checksum, error) {
		var tf strings.Builder
		tf.WriteString("ref: bench/os\nrepos: [bench]\npackages:\n  - shell\n  - kernel\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&tf, "  - base-%04d\n", i)
		}
		p := filepath.Join(cfg, "tree.yaml")
		os.WriteFile(p, []byte(tf.String()), 0o644)
		res, err := compose.Tree(ctx, compose.Options{Treefile: p, Repo: s.Repo(), CacheDir: filepath.Join(dir, "compose-cache"), Lockfile: lock})
		if err != nil {
			return object.Checksum{}, err
		}
		return object.ParseChecksum(res.Commit)
	}
	lock := filepath.Join(cfg, "lock.json")
	os.WriteFile(lock, []byte(`{"packages": {"base-0000": {"evra": "1.0-1.noarch"}}}`), 0o644)
	base1, err := composeBase(lock)
	if err != nil {
		return err
	}
	fmt.Printf("generated and composed a base of %d packages x %d files in %s (not part of the figures)\n", n+2, per, time.Since(t0).Round(time.Millisecond))
	fmt.Printf("machine: %d CPUs\n", runtime.NumCPU())

	req := layer.Requests{Install: []string{"small"}}
	measure := func(title string, base object.Checksum, reapply bool) error {
		start := time.Now()
		res, err := layer.Build(ctx, layer.Options{Repo: s.Repo(), Base: base, Requests: req, ReposDir: reposD,
			CacheDir: filepath.Join(dir, "cache"), Reapply: reapply})
		if err != nil {
			return err
		}
		td := time.Now()
		if _, err := s.Deploy(ctx, sysroot.DeployOptions{OS: "bench", Rev: res.Commit.String(), OriginRefspec: "bench/os"}); err != nil {
			return err
		}
		deploy := time.Since(td)
		t := res.Timings
		fmt.Printf("%s: %s end to end (layered %s)\n", title, time.Since(start).Round(time.Millisecond), strings.Join(res.Layered, ", "))
		for _, p := range []struct {
			name string
			d    time.Duration
		}{{"solve", t.Solve}, {"fetch", t.Fetch}, {"checkout", t.Checkout}, {"unpack", t.Unpack},
			{"scripts", t.Scripts}, {"commit", t.Commit}, {"deploy", deploy}} {
			fmt.Printf("  %-9s %8s\n", p.name, p.d.Round(time.Millisecond))
		}
		return nil
	}
	if err := measure("layer small (+ small-dep) on the base", base1, false); err != nil {
		return err
	}
	base2, err := composeBase("")
	if err != nil {
		return err
	}
	// Upgrade: pulling and deploying the new base is the upgrade's own
	// cost; what layering adds is the build of the derived commit (the
	// RPMs are cached) and the deploy of it instead of the base.
	return measure("re-apply on the upgraded base", base2, true)
}

func writeBase(dir string, i, files int, version string) error {
	md := benchutil.RPMMeta(fmt.Sprintf("base-%04d", i), version)
	p, err := rpmpack.NewRPM(md)
	if err != nil {
		return err
	}
	for f := 0; f < files; f++ {
		p.AddFile(rpmpack.RPMFile{Name: fmt.Sprintf("/usr/share/base-%04d/f%03d", i, f),
			Body: []byte(fmt.Sprintf("base %d file %d version %s\n", i, f, version)), Mode: 0o100644, Owner: "root", Group: "root"})
	}
	_, err = benchutil.WriteRPM(p, filepath.Join(dir, md.Name+"-"+version+"-1.noarch.rpm"))
	return err
}

func writeKernel(dir string) error {
	p, err := rpmpack.NewRPM(benchutil.RPMMeta("kernel", "6.1.0"))
	if err != nil {
		return err
	}
	for name, body := range map[string]string{"/usr/lib/modules/6.1.0-bench/vmlinuz": "KERNEL\n",
		"/usr/lib/os-release": "NAME=BenchOS\nID=bench\nVERSION_ID=1\n"} {
		p.AddFile(rpmpack.RPMFile{Name: name, Body: []byte(body), Mode: 0o100644, Owner: "root", Group: "root"})
	}
	_, err = benchutil.WriteRPM(p, filepath.Join(dir, "kernel-6.1.0-1.noarch.rpm"))
	return err
}
