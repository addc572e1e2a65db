package serve_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/serve"
	"github.com/osupdate/os-update/repo/serve/servetest"
	"github.com/osupdate/os-update/repo/sign"
	"github.com/osupdate/os-update/repo/sign/gpgtest"
)

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestStaticServing(t *testing.T) {
	r := servetest.Init(t)
	tree := filepath.Join(t.TempDir(), "tree")
	os.MkdirAll(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "f"), []byte(strings.Repeat("0123456789", 100)), 0o644)
	c := servetest.Commit(t, r, tree, "main", "s", nil, nil)
	// A symlink inside the repository pointing outside must not leak.
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("secret"), 0o644)
	os.Symlink(secret, filepath.Join(r.Path(), "objects", "leak.commit"))
	srv := servetest.Serve(t, r.Path())

	commitURL := srv.URL + "/objects/" + object.LoosePath(c, object.TypeCommit, true)
	resp, body := get(t, commitURL, nil)
	want, _ := r.ReadMeta(object.TypeCommit, c)
	if resp.StatusCode != 200 || string(body) != string(want) {
		t.Fatalf("commit: %d", resp.StatusCode)
	}
	if resp.Header.Get("Content-Type") != "application/octet-stream" || resp.Header.Get("ETag") == "" || resp.Header.Get("Last-Modified") == "" {
		t.Fatalf("headers: %v", resp.Header)
	}
	etag := resp.Header.Get("ETag")
	resp, _ = get(t, commitURL, map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", resp.StatusCode)
	}
	resp, body = get(t, commitURL, map[string]string{"Range": "bytes=2-5"})
	if resp.StatusCode != http.StatusPartialContent || string(body) != string(want[2:6]) {
		t.Fatalf("Range: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, srv.URL+"/refs/heads/main", nil)
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != c.String() || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("ref: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, srv.URL+"/config", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "archive") {
		t.Fatalf("config: %d %q", resp.StatusCode, body)
	}
	for _, p := range []string{"/objects/leak.commit", "/../../etc/passwd", "/objects/../config", "/tmp/", "/state/", "/objects/", "/", "/.lock", "/objects//x", "/%2e%2e/etc/passwd"} {
		resp, body := get(t, srv.URL+p, nil)
		if resp.StatusCode < 400 || strings.Contains(string(body), "secret") || strings.Contains(string(body), "root:") {
			t.Errorf("%s: %d %q", p, resp.StatusCode, body)
		}
	}
	req, _ := http.NewRequest("PUT", srv.URL+"/summary", strings.NewReader("x"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("PUT: %v %v", resp, err)
	}
}

func TestRefusesBareRepository(t *testing.T) {
	r, err := repo.Init(filepath.Join(t.TempDir(), "bare"), repo.ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := serve.NewHandler(r.Path(), serve.Options{}); err == nil || !strings.Contains(err.Error(), "archive") {
		t.Fatalf("bare repository served: %v", err)
	}
}

// TestOstreePullFromOurServer is required test 1: `ostree pull` with
// gpg-verify and gpg-verify-summary on, trusting our key, from our server;
// then `ostree fsck` is clean and the checkout is identical to the tree.
func TestOstreePullFromOurServer(t *testing.T) {
	testutil.RequireTool(t, "ostree")
	key := gpgtest.NewKey(t, "Serve Test", "never")
	signer, err := sign.LoadGPGSigner(key.SecretFile, "")
	if err != nil {
		t.Fatal(err)
	}
	r := servetest.Init(t)
	tree := filepath.Join(t.TempDir(), "tree")
	testutil.MakeSampleTree(t, tree)
	c := servetest.Commit(t, r, tree, "os/main", "first", []sign.Signer{signer}, []sign.Signer{signer})
	srv := servetest.Serve(t, r.Path())

	client := filepath.Join(t.TempDir(), "client")
	testutil.Run(t, "ostree", "--repo="+client, "init", "--mode=bare")
	testutil.Run(t, "ostree", "--repo="+client, "remote", "add", "--gpg-import="+key.PublicFile,
		"--set=gpg-verify=true", "--set=gpg-verify-summary=true", "origin", srv.URL)
	testutil.Run(t, "ostree", "--repo="+client, "pull", "origin", "os/main")
	got := strings.TrimSpace(testutil.Run(t, "ostree", "--repo="+client, "rev-parse", "origin:os/main"))
	if got != c.String() {
		t.Fatalf("pulled %s, want %s", got, c)
	}
	testutil.Run(t, "ostree", "--repo="+client, "fsck")
	out := filepath.Join(t.TempDir(), "checkout")
	testutil.Run(t, "ostree", "--repo="+client, "checkout", "origin:os/main", out)
	opts := testutil.TreeOptions{Owners: true}
	testutil.CompareTrees(t, testutil.SnapshotTree(t, tree, opts), testutil.SnapshotTree(t, out, opts))

	// The commit signature was really checked: a client trusting another
	// key refuses the pull.
	other := gpgtest.NewKey(t, "Other", "never")
	client2 := filepath.Join(t.TempDir(), "client2")
	testutil.Run(t, "ostree", "--repo="+client2, "init", "--mode=archive")
	testutil.Run(t, "ostree", "--repo="+client2, "remote", "add", "--gpg-import="+other.PublicFile, "origin", srv.URL)
	if _, errOut, err := testutil.RunErr("ostree", "--repo="+client2, "pull", "origin", "os/main"); err == nil {
		t.Fatal("ostree pulled a commit signed by an untrusted key")
	} else if !strings.Contains(strings.ToLower(errOut), "signature") && !strings.Contains(strings.ToLower(errOut), "gpg") {
		t.Fatalf("unexpected error: %s", errOut)
	}
}
