package pull

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/delta"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/serve"
	"github.com/osupdate/os-update/repo/serve/servetest"
)

// The pull crash harness re-executes the test binary as a child that pulls
// into a fresh repository and is SIGKILLed by the parent after a random
// delay (landing in the summary, commit, delta or object stage, or in a
// transaction's commit). The parent then requires our fsck and `ostree
// fsck` to be clean and a re-pull to complete the commit.

func TestMain(m *testing.M) {
	if os.Getenv("OSU_PULL_CRASH_CHILD") == "1" {
		os.Exit(pullCrashChild())
	}
	os.Exit(m.Run())
}

func pullCrashChild() int {
	r, err := repo.Open(os.Getenv("OSU_PULL_REPO"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	src := &Source{Name: "origin", URL: os.Getenv("OSU_PULL_URL")}
	opts := Options{Refs: []string{"os/main"}, DisableDeltas: os.Getenv("OSU_PULL_NODELTA") == "1", Workers: 4}
	if _, err := Pull(context.Background(), r, src, opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func TestPullCrashConsistency(t *testing.T) {
	ostree := testutil.RequireTool(t, "ostree")
	runs := 16
	if v, err := strconv.Atoi(os.Getenv("OSU_CRASH_RUNS")); err == nil {
		runs = v
	}
	f := newFixture(t)
	// A tree with enough objects that the pull takes a while, and a
	// delta for half of the runs.
	for i := 0; i < 300; i++ {
		p := filepath.Join(f.tree, fmt.Sprintf("usr/share/crash/d%02d/f%03d", i%20, i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(fmt.Sprintf("crash test file %d\n", i)), 0o644)
	}
	f.commit = servetest.Commit(t, f.served, f.tree, "os/main", "crash", nil, nil)
	if _, err := delta.Generate(context.Background(), f.served, object.ZeroChecksum, f.commit, delta.GenerateOptions{}); err != nil {
		t.Fatal(err)
	}
	servetest.Commit(t, f.served, f.tree, "os/unused", "refresh summary", nil, nil)
	h, err := serve.NewHandler(f.served.Path(), serve.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Every request is slowed down a little so that a kill lands inside
	// the pull rather than after it.
	srv := servetest.ServeHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		h.ServeHTTP(w, r)
	}), &servetest.Log{})

	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	killed := 0
	for i := 0; i < runs; i++ {
		noDelta := i%2 == 1
		local := newLocal(t, repo.ModeBare)
		delay := time.Duration(rng.Intn(600)) * time.Millisecond
		cmd := exec.Command(os.Args[0], "-test.run=^TestPullCrashConsistency$")
		cmd.Env = append(os.Environ(), "OSU_PULL_CRASH_CHILD=1", "OSU_PULL_REPO="+local.Path(), "OSU_PULL_URL="+srv.URL,
			"OSU_PULL_NODELTA="+map[bool]string{true: "1", false: "0"}[noDelta])
		out := &limitedBuffer{}
		cmd.Stderr = out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: child failed before the kill: %v\n%s", i, err, out)
			}
		case <-time.After(delay):
			cmd.Process.Kill()
			<-done
			killed++
		}
		name := fmt.Sprintf("run %d (killed after %v, deltas %v)", i, delay, !noDelta)
		rep, err := local.Fsck(context.Background(), repo.FsckOptions{})
		if err != nil {
			t.Fatalf("%s: fsck: %v", name, err)
		}
		for _, p := range rep.Problems {
			t.Errorf("%s: fsck: %s", name, p)
		}
		if o, e, err := testutil.RunErr(ostree, "fsck", "--repo="+local.Path()); err != nil {
			t.Errorf("%s: ostree fsck: %v\n%s%s", name, err, o, e)
		}
		if _, err := Pull(context.Background(), local, &Source{Name: "origin", URL: srv.URL},
			Options{Refs: []string{"os/main"}, DisableDeltas: noDelta}); err != nil {
			t.Fatalf("%s: re-pull: %v", name, err)
		}
		if c, err := local.ReadRef("origin", "os/main"); err != nil || c != f.commit {
			t.Fatalf("%s: after the re-pull the ref is %s (%v), want %s", name, c, err, f.commit)
		}
		fsckClean(t, local)
	}
	if killed == 0 {
		t.Fatalf("no run was killed inside the pull (every pull finished within its delay)")
	}
	t.Logf("%d of %d pulls killed mid-way", killed, runs)
}

// limitedBuffer keeps the first 64 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 64<<10 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }
