package pull

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/delta"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/remote"
	"github.com/osupdate/os-update/repo/serve"
	"github.com/osupdate/os-update/repo/serve/servetest"
	"github.com/osupdate/os-update/repo/sign"
	"github.com/osupdate/os-update/repo/sign/gpgtest"
)

type fixture struct {
	served *repo.Repo
	srv    *servetest.Server
	key    *gpgtest.Key
	signer *sign.GPGSigner
	tree   string
	commit object.Checksum
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	key := gpgtest.NewKey(t, "Pull Test", "never")
	signer, err := sign.LoadGPGSigner(key.SecretFile, "")
	if err != nil {
		t.Fatal(err)
	}
	r := servetest.Init(t)
	tree := filepath.Join(t.TempDir(), "tree")
	testutil.MakeSampleTree(t, tree)
	c := servetest.Commit(t, r, tree, "os/main", "first", []sign.Signer{signer}, []sign.Signer{signer})
	return &fixture{served: r, srv: servetest.Serve(t, r.Path()), key: key, signer: signer, tree: tree, commit: c}
}

func (f *fixture) source(t *testing.T, url string) *Source {
	t.Helper()
	kr, err := sign.LoadKeyring(f.key.PublicFile)
	if err != nil {
		t.Fatal(err)
	}
	v := &sign.GPGVerifier{Keyring: kr}
	return &Source{Name: "origin", URL: url, CommitVerifiers: []sign.Verifier{v}, SummaryVerifiers: []sign.Verifier{v}}
}

func newLocal(t *testing.T, mode repo.Mode) *repo.Repo {
	t.Helper()
	r, err := repo.Init(filepath.Join(t.TempDir(), "local"), mode)
	if err != nil {
		t.Fatal(err)
	}
	r.SetFsync(false)
	t.Cleanup(func() { r.Close() })
	return r
}

func fsckClean(t *testing.T, r *repo.Repo) {
	t.Helper()
	rep, err := r.Fsck(context.Background(), repo.FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 {
		t.Fatalf("fsck: %v", rep.Problems)
	}
}

func checkoutEqual(t *testing.T, r *repo.Repo, c object.Checksum, tree string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "co")
	if err := r.Checkout(context.Background(), c, out, repo.CheckoutOptions{}); err != nil {
		t.Fatal(err)
	}
	opts := testutil.TreeOptions{Owners: true}
	testutil.CompareTrees(t, testutil.SnapshotTree(t, tree, opts), testutil.SnapshotTree(t, out, opts))
}

func TestPullVerifiedIntoBareAndArchive(t *testing.T) {
	f := newFixture(t)
	for _, mode := range []repo.Mode{repo.ModeBare, repo.ModeArchive} {
		local := newLocal(t, mode)
		var last Progress
		res, err := Pull(context.Background(), local, f.source(t, f.srv.URL), Options{
			Refs: []string{"os/main"}, Progress: func(p Progress) { last = p },
		})
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if got, _ := local.ReadRef("origin", "os/main"); got != f.commit {
			t.Fatalf("ref %s, want %s", got, f.commit)
		}
		if local.IsPartial(f.commit) {
			t.Fatal("commit left partial")
		}
		if last.Stage != "done" || last.ObjectsDone == 0 || last.ObjectsDone != last.ObjectsTotal || last.BytesDone != res.BytesFetched {
			t.Fatalf("progress %+v, result %+v", last, res)
		}
		fsckClean(t, local)
		checkoutEqual(t, local, f.commit, f.tree)
		// The detached signature came along and verifies locally.
		if _, err := sign.VerifyCommit(local, f.commit, f.source(t, "").CommitVerifiers...); err != nil {
			t.Fatal(err)
		}
	}

	// Incremental: a second commit changing one file fetches only it and
	// the metadata above it.
	local := newLocal(t, repo.ModeBare)
	if _, err := Pull(context.Background(), local, f.source(t, f.srv.URL), Options{Refs: []string{"os/main"}}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(f.tree, "usr/share/many/f007"), []byte("changed"), 0o644)
	c2 := servetest.Commit(t, f.served, f.tree, "os/main", "second", []sign.Signer{f.signer}, []sign.Signer{f.signer})
	f.srv.Log.Reset()
	res, err := Pull(context.Background(), local, f.source(t, f.srv.URL), Options{Refs: []string{"os/main"}, DisableDeltas: true})
	if err != nil {
		t.Fatal(err)
	}
	var filez, objects int
	for _, e := range f.srv.Log.Entries() {
		if strings.HasSuffix(e.Path, ".filez") {
			filez++
		}
		for _, ext := range []string{".filez", ".dirtree", ".dirmeta", ".commit"} {
			if strings.HasSuffix(e.Path, ext) && e.Status == 200 {
				objects++
			}
		}
	}
	if filez != 1 {
		t.Fatalf("incremental pull fetched %d content objects, want 1", filez)
	}
	if res.ObjectsFetched != objects {
		t.Fatalf("result says %d objects fetched, the server served %d", res.ObjectsFetched, objects)
	}
	fsckClean(t, local)
	checkoutEqual(t, local, c2, f.tree)
}

// TestRefusedBeforeContent is required test 4: an untrusted key, an
// unsigned commit and a summary whose signature does not match are each
// refused before any dirtree, dirmeta or content object is requested, and
// nothing is stored.
func TestRefusedBeforeContent(t *testing.T) {
	f := newFixture(t)
	other := gpgtest.NewKey(t, "Untrusted", "never")
	otherSigner, err := sign.LoadGPGSigner(other.SecretFile, "")
	if err != nil {
		t.Fatal(err)
	}
	trusted := f.source(t, f.srv.URL)

	cases := []struct {
		name  string
		setup func(t *testing.T) *Source
		want  string
	}{
		{"untrusted key", func(t *testing.T) *Source {
			// Commit and summary signed by a key the client does not trust.
			r := servetest.Init(t)
			servetest.Commit(t, r, f.tree, "os/main", "x", []sign.Signer{otherSigner}, []sign.Signer{f.signer})
			srv := servetest.Serve(t, r.Path())
			f.srv = srv
			return f.source(t, srv.URL)
		}, "signature"},
		{"unsigned commit", func(t *testing.T) *Source {
			r := servetest.Init(t)
			servetest.Commit(t, r, f.tree, "os/main", "x", nil, []sign.Signer{f.signer})
			srv := servetest.Serve(t, r.Path())
			f.srv = srv
			return f.source(t, srv.URL)
		}, "no signatures"},
		{"summary signature mismatch", func(t *testing.T) *Source {
			r := servetest.Init(t)
			servetest.Commit(t, r, f.tree, "os/main", "x", []sign.Signer{f.signer}, []sign.Signer{f.signer})
			// Replace the summary after signing (a new ref), keeping the old .sig.
			sig, _ := os.ReadFile(filepath.Join(r.Path(), "summary.sig"))
			servetest.Commit(t, r, f.tree, "os/other", "y", []sign.Signer{f.signer}, nil)
			os.WriteFile(filepath.Join(r.Path(), "summary.sig"), sig, 0o644)
			srv := servetest.Serve(t, r.Path())
			f.srv = srv
			return f.source(t, srv.URL)
		}, "summary signature"},
		{"summary signed by untrusted key", func(t *testing.T) *Source {
			r := servetest.Init(t)
			servetest.Commit(t, r, f.tree, "os/main", "x", []sign.Signer{f.signer}, []sign.Signer{otherSigner})
			srv := servetest.Serve(t, r.Path())
			f.srv = srv
			return f.source(t, srv.URL)
		}, "summary signature"},
	}
	_ = trusted
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.setup(t)
			local := newLocal(t, repo.ModeBare)
			_, err := Pull(context.Background(), local, src, Options{Refs: []string{"os/main"}})
			if err == nil || !errors.Is(err, sign.ErrNoValidSignature) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("pull: %v", err)
			}
			for _, e := range f.srv.Log.Entries() {
				if strings.HasSuffix(e.Path, ".filez") || strings.HasSuffix(e.Path, ".dirtree") || strings.HasSuffix(e.Path, ".dirmeta") || strings.Contains(e.Path, "/deltas/") {
					t.Fatalf("fetched %s before refusing", e.Path)
				}
			}
			n := 0
			local.ListObjects(func(object.Name) error { n++; return nil })
			if refs, _ := local.ListRefs(); n != 0 || len(refs) != 0 {
				t.Fatalf("stored %d objects, refs %v", n, refs)
			}
			fsckClean(t, local)
		})
	}
}

// TestPullFromOstree is required test 2: a repository built and signed by
// ostree (key made by gpg here), served by python3 -m http.server.
func TestPullFromOstree(t *testing.T) {
	testutil.RequireTool(t, "ostree")
	py := testutil.RequireTool(t, "python3")
	key := gpgtest.NewKey(t, "Ostree Builder", "never")
	dir := t.TempDir()
	served := filepath.Join(dir, "served")
	tree := filepath.Join(dir, "tree")
	testutil.MakeSampleTree(t, tree)
	testutil.Run(t, "ostree", "--repo="+served, "init", "--mode=archive")
	c1 := strings.TrimSpace(testutil.Run(t, "ostree", "--repo="+served, "commit", "-b", "os/main", "--tree=dir="+tree, "-s", "one", "--add-metadata-string=version=1"))
	testutil.Run(t, "ostree", "--repo="+served, "gpg-sign", "--gpg-homedir="+key.Home, c1, key.Fingerprint)
	os.WriteFile(filepath.Join(tree, "usr/share/many/f001"), []byte("second version"), 0o644)
	c2 := strings.TrimSpace(testutil.Run(t, "ostree", "--repo="+served, "commit", "-b", "os/main", "--tree=dir="+tree, "-s", "two", "--add-metadata-string=version=2"))
	testutil.Run(t, "ostree", "--repo="+served, "gpg-sign", "--gpg-homedir="+key.Home, c2, key.Fingerprint)
	testutil.Run(t, "ostree", "--repo="+served, "static-delta", "generate", "os/main")
	testutil.Run(t, "ostree", "--repo="+served, "summary", "-u", "--gpg-sign="+key.Fingerprint, "--gpg-homedir="+key.Home)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(py, "-m", "http.server", "--bind", "127.0.0.1", "--directory", served, fmt.Sprint(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatal("python3 http.server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The remote is configured as a user would: verification defaults on.
	local := newLocal(t, repo.ModeBare)
	store := &remote.Store{Repo: local}
	if err := store.Add(&remote.Remote{Name: "origin", URL: url, GPGVerify: true, GPGVerifySummary: true}, remote.AddOptions{GPGImport: []string{key.PublicFile}}); err != nil {
		t.Fatal(err)
	}
	rem, err := store.Get("origin")
	if err != nil {
		t.Fatal(err)
	}
	src, err := FromRemote(store, rem)
	if err != nil {
		t.Fatal(err)
	}
	want1, _ := object.ParseChecksum(c1)
	want2, _ := object.ParseChecksum(c2)
	// Depth 1 brings the parent too (object walk, no delta).
	res, err := Pull(context.Background(), local, src, Options{Refs: []string{"os/main"}, Depth: 1, DisableDeltas: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Refs["os/main"] != want2 || res.DeltasUsed != 0 {
		t.Fatalf("result %+v", res)
	}
	if ok, _ := local.HasObject(want1, object.TypeCommit); !ok || local.IsPartial(want1) {
		t.Fatal("parent not pulled completely with --depth=1")
	}
	fsckClean(t, local)
	testutil.Run(t, "ostree", "--repo="+local.Path(), "fsck")
	checkoutEqual(t, local, want2, tree)

	// A second client that has the first commit takes the static delta
	// ostree generated, and ends up with the same tree.
	local2 := newLocal(t, repo.ModeBare)
	store2 := &remote.Store{Repo: local2}
	if err := store2.Add(&remote.Remote{Name: "origin", URL: url, GPGVerify: true, GPGVerifySummary: true}, remote.AddOptions{GPGImport: []string{key.PublicFile}}); err != nil {
		t.Fatal(err)
	}
	rem2, _ := store2.Get("origin")
	src2, err := FromRemote(store2, rem2)
	if err != nil {
		t.Fatal(err)
	}
	res, err = Pull(context.Background(), local2, src2, Options{Refs: []string{"os/main@" + c1}, DisableDeltas: true})
	if err != nil || res.Refs["os/main"] != want1 {
		t.Fatalf("pull @c1: %+v %v", res, err)
	}
	var notes []string
	res, err = Pull(context.Background(), local2, src2, Options{Refs: []string{"os/main"}, Log: func(f string, a ...any) { notes = append(notes, fmt.Sprintf(f, a...)) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.DeltasUsed != 1 || len(res.DeltaFailures) != 0 {
		t.Fatalf("delta not used: %+v %v", res, notes)
	}
	fsckClean(t, local2)
	testutil.Run(t, "ostree", "--repo="+local2.Path(), "fsck")
	checkoutEqual(t, local2, want2, tree)
	if _, err := sign.VerifyCommit(local2, want2, src2.CommitVerifiers...); err != nil {
		t.Fatalf("detached metadata after delta: %v", err)
	}

	// --commit-metadata-only: the commit arrives, verified, partial; no ref moves.
	local3 := newLocal(t, repo.ModeArchive)
	res3, err := Pull(context.Background(), local3, src, Options{Refs: []string{"os/main"}, CommitMetadataOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if !local3.IsPartial(res3.Refs["os/main"]) {
		t.Fatal("commit-metadata-only pull left no partial commit")
	}
	if _, err := local3.ReadRef("origin", "os/main"); err == nil {
		t.Fatal("commit-metadata-only pull moved the ref")
	}
	fsckClean(t, local3)
}

// TestMirror: with no refs, every ref of the summary lands in refs/heads
// and the summary and its signature are copied.
func TestMirror(t *testing.T) {
	f := newFixture(t)
	servetest.Commit(t, f.served, f.tree, "os/other", "other", []sign.Signer{f.signer}, []sign.Signer{f.signer})
	local := newLocal(t, repo.ModeArchive)
	src := f.source(t, f.srv.URL)
	src.Name = ""
	res, err := Pull(context.Background(), local, src, Options{Mirror: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Refs) != 2 {
		t.Fatalf("refs %v", res.Refs)
	}
	for ref, c := range res.Refs {
		if got, err := local.ReadRef("", ref); err != nil || got != c {
			t.Fatalf("refs/heads/%s: %s %v", ref, got, err)
		}
	}
	for _, name := range []string{"summary", "summary.sig"} {
		a, _ := os.ReadFile(filepath.Join(f.served.Path(), name))
		b, err := os.ReadFile(filepath.Join(local.Path(), name))
		if err != nil || string(a) != string(b) {
			t.Fatalf("%s not mirrored: %v", name, err)
		}
	}
	fsckClean(t, local)
}

// TestRepullUnsigned: without verification, an unsigned commit pulls; a
// second pull of the same commit requests neither the commit nor content.
func TestRepullUnsigned(t *testing.T) {
	r := servetest.Init(t)
	tree := filepath.Join(t.TempDir(), "tree")
	testutil.MakeSampleTree(t, tree)
	c := servetest.Commit(t, r, tree, "main", "s", nil, nil)
	srv := servetest.Serve(t, r.Path())
	local := newLocal(t, repo.ModeBare)
	src := &Source{Name: "origin", URL: srv.URL}
	for i := 0; i < 2; i++ {
		srv.Log.Reset()
		res, err := Pull(context.Background(), local, src, Options{Refs: []string{"main"}})
		if err != nil || res.Refs["main"] != c {
			t.Fatalf("pull %d: %+v %v", i, res, err)
		}
	}
	for _, e := range srv.Log.Entries() {
		if !strings.HasSuffix(e.Path, "summary") && !strings.HasSuffix(e.Path, "summary.sig") && !strings.HasSuffix(e.Path, ".commitmeta") {
			t.Fatalf("second pull fetched %s", e.Path)
		}
	}
	fsckClean(t, local)
	checkoutEqual(t, local, c, tree)
}

// TestTimestampCheck: a validly signed but older commit does not replace
// a newer one when TimestampCheck is on, and nothing of it is fetched.
func TestTimestampCheck(t *testing.T) {
	f := newFixture(t)
	old, err := f.served.CommitDir(context.Background(), f.tree, repo.CommitOptions{Branch: "os/old", Subject: "old", Timestamp: time.Unix(1000, 0), NoBindings: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := sign.SignCommit(f.served, old, f.signer); err != nil {
		t.Fatal(err)
	}
	servetest.Commit(t, f.served, f.tree, "os/unused", "x", nil, []sign.Signer{f.signer})
	local := newLocal(t, repo.ModeBare)
	src := f.source(t, f.srv.URL)
	if _, err := Pull(context.Background(), local, src, Options{Refs: []string{"os/main"}}); err != nil {
		t.Fatal(err)
	}
	_, err = Pull(context.Background(), local, src, Options{Refs: []string{"os/main@" + old.String()}, TimestampCheck: true})
	if err == nil || !strings.Contains(err.Error(), "downgrade") {
		t.Fatalf("downgrade accepted: %v", err)
	}
	if got, _ := local.ReadRef("origin", "os/main"); got != f.commit {
		t.Fatalf("ref moved to %s", got)
	}
	if ok, _ := local.HasObject(old, object.TypeCommit); ok {
		t.Fatal("refused commit was stored")
	}
	// A commit bound to another ref is refused under this one.
	bound, err := f.served.CommitDir(context.Background(), f.tree, repo.CommitOptions{Branch: "os/bound", Subject: "b"})
	if err != nil {
		t.Fatal(err)
	}
	sign.SignCommit(f.served, bound, f.signer)
	if _, err := Pull(context.Background(), local, src, Options{Refs: []string{"os/main@" + bound.String()}}); err == nil || !strings.Contains(err.Error(), "bound to refs") {
		t.Fatalf("ref binding not enforced: %v", err)
	}
	// Without the check, an explicit REF@CHECKSUM downgrade is allowed.
	if _, err := Pull(context.Background(), local, src, Options{Refs: []string{"os/main@" + old.String()}}); err != nil {
		t.Fatal(err)
	}
	fsckClean(t, local)
}

// TestTLS: an https remote verifies against tls-ca-path; an untrusted
// certificate fails at once (no retries) naming the URL.
func TestTLS(t *testing.T) {
	f := newFixture(t)
	h, err := serve.NewHandler(f.served.Path(), serve.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(h)
	defer ts.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	os.WriteFile(caFile, pemBytes, 0o644)

	local := newLocal(t, repo.ModeBare)
	src := f.source(t, ts.URL)
	start := time.Now()
	_, err = Pull(context.Background(), local, src, Options{Refs: []string{"os/main"}})
	if err == nil || !strings.Contains(err.Error(), ts.URL+"/summary") || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("certificate errors were retried (%v)", time.Since(start))
	}
	src.TLS = TLSOptions{CAPath: caFile}
	if _, err := Pull(context.Background(), local, src, Options{Refs: []string{"os/main"}}); err != nil {
		t.Fatal(err)
	}
	fsckClean(t, local)
	checkoutEqual(t, local, f.commit, f.tree)
}

// TestOwnDeltas: deltas written by repo/delta and listed by our summary
// are taken by our pull — from nothing for a fresh repository, from the
// previous commit for an update — with the result identical to the tree.
func TestOwnDeltas(t *testing.T) {
	f := newFixture(t)
	if _, err := delta.Generate(context.Background(), f.served, object.ZeroChecksum, f.commit, delta.GenerateOptions{}); err != nil {
		t.Fatal(err)
	}
	servetest.Commit(t, f.served, f.tree, "os/unused", "refresh summary", nil, []sign.Signer{f.signer})
	local := newLocal(t, repo.ModeBare)
	f.srv.Log.Reset()
	res, err := Pull(context.Background(), local, f.source(t, f.srv.URL), Options{Refs: []string{"os/main"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.DeltasUsed != 1 {
		t.Fatalf("scratch delta not used: %+v", res)
	}
	for _, e := range f.srv.Log.Entries() {
		if strings.HasSuffix(e.Path, ".filez") || strings.HasSuffix(e.Path, ".dirtree") {
			t.Fatalf("fetched %s although the delta carries everything", e.Path)
		}
	}
	fsckClean(t, local)
	checkoutEqual(t, local, f.commit, f.tree)

	os.WriteFile(filepath.Join(f.tree, "usr/share/many/f010"), []byte("updated"), 0o644)
	c2 := servetest.Commit(t, f.served, f.tree, "os/main", "second", []sign.Signer{f.signer}, nil)
	if _, err := delta.Generate(context.Background(), f.served, f.commit, c2, delta.GenerateOptions{}); err != nil {
		t.Fatal(err)
	}
	servetest.Commit(t, f.served, f.tree, "os/unused", "refresh summary", nil, []sign.Signer{f.signer})
	res, err = Pull(context.Background(), local, f.source(t, f.srv.URL), Options{Refs: []string{"os/main"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.DeltasUsed != 1 {
		t.Fatalf("update delta not used: %+v", res)
	}
	fsckClean(t, local)
	checkoutEqual(t, local, c2, f.tree)
}

// TestDeltaFallback: a delta whose part is corrupt fails, is reported, and
// the object walk completes the pull.
func TestDeltaFallback(t *testing.T) {
	f := newFixture(t)
	if _, err := delta.Generate(context.Background(), f.served, object.ZeroChecksum, f.commit, delta.GenerateOptions{}); err != nil {
		t.Fatal(err)
	}
	servetest.Commit(t, f.served, f.tree, "os/unused", "refresh summary", nil, []sign.Signer{f.signer})
	part := filepath.Join(f.served.Path(), delta.PartPath(object.ZeroChecksum, f.commit, 0))
	if err := os.WriteFile(part, []byte("corrupt part"), 0o644); err != nil {
		t.Fatal(err)
	}
	local := newLocal(t, repo.ModeBare)
	var notes []string
	res, err := Pull(context.Background(), local, f.source(t, f.srv.URL), Options{Refs: []string{"os/main"}, Log: func(format string, a ...any) { notes = append(notes, fmt.Sprintf(format, a...)) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.DeltasUsed != 0 || len(res.DeltaFailures) != 1 || len(notes) != 1 || !strings.Contains(notes[0], "fetching objects instead") {
		t.Fatalf("result %+v, notes %q", res, notes)
	}
	fsckClean(t, local)
	checkoutEqual(t, local, f.commit, f.tree)
}

// TestSummaryCache: an unchanged summary.sig means the cached summary is
// used (and verified again); a new one, or a damaged cache, means a fresh
// download.
func TestSummaryCache(t *testing.T) {
	f := newFixture(t)
	local := newLocal(t, repo.ModeBare)
	src := f.source(t, f.srv.URL)
	summaryGets := func() int {
		n := 0
		for _, e := range f.srv.Log.Entries() {
			if e.Path == "/summary" {
				n++
			}
		}
		return n
	}
	pull := func() {
		t.Helper()
		f.srv.Log.Reset()
		if _, err := Pull(context.Background(), local, src, Options{Refs: []string{"os/main"}}); err != nil {
			t.Fatal(err)
		}
	}
	pull()
	if summaryGets() != 1 {
		t.Fatal("first pull did not fetch the summary")
	}
	pull()
	if summaryGets() != 0 {
		t.Fatal("unchanged summary fetched again")
	}
	cache := filepath.Join(local.Path(), "tmp", "cache", "summaries", "origin")
	os.WriteFile(cache, []byte("damaged"), 0o644)
	pull()
	if summaryGets() != 1 {
		t.Fatal("damaged cache not replaced by a download")
	}
	c2 := servetest.Commit(t, f.served, f.tree, "os/main", "second", []sign.Signer{f.signer}, []sign.Signer{f.signer})
	pull()
	if summaryGets() != 1 {
		t.Fatal("new summary not fetched")
	}
	if got, _ := local.ReadRef("origin", "os/main"); got != c2 {
		t.Fatalf("ref %s, want %s", got, c2)
	}
	fsckClean(t, local)
}

// TestPullFileURL: a file:// source (a repository on a local disk, as a
// second virtual disk in the boot tests) pulls like HTTP, deltas included,
// and a missing repository is a clear error.
func TestPullFileURL(t *testing.T) {
	f := newFixture(t)
	local := newLocal(t, repo.ModeBare)
	url := "file://" + f.served.Path()
	if _, err := Pull(context.Background(), local, f.source(t, url), Options{Refs: []string{"os/main"}}); err != nil {
		t.Fatal(err)
	}
	fsckClean(t, local)
	checkoutEqual(t, local, f.commit, f.tree)

	os.WriteFile(filepath.Join(f.tree, "usr/share/many/f011"), []byte("by file"), 0o644)
	c2 := servetest.Commit(t, f.served, f.tree, "os/main", "second", []sign.Signer{f.signer}, nil)
	if _, err := delta.Generate(context.Background(), f.served, f.commit, c2, delta.GenerateOptions{}); err != nil {
		t.Fatal(err)
	}
	servetest.Commit(t, f.served, f.tree, "os/unused", "refresh summary", nil, []sign.Signer{f.signer})
	res, err := Pull(context.Background(), local, f.source(t, url), Options{Refs: []string{"os/main"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.DeltasUsed != 1 {
		t.Fatalf("delta not used over file://: %+v", res)
	}
	fsckClean(t, local)
	checkoutEqual(t, local, c2, f.tree)

	_, err = Pull(context.Background(), newLocal(t, repo.ModeBare), f.source(t, "file:///nonexistent/repo"), Options{Refs: []string{"os/main"}, Retries: 1})
	if err == nil || !strings.Contains(err.Error(), "nonexistent") {
		t.Fatalf("missing file:// repository: %v", err)
	}
}
