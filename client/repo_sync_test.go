package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo/sign/gpgtest"
)

func runSync(t *testing.T, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb}
	err := run(ctx, e, args)
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

func mustSync(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runSync(t, context.Background(), args...)
	if err != nil {
		t.Fatalf("os-update %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestSyncCommands drives sign, summary, remote, serve, pull and verify
// end to end through the command line.
func TestSyncCommands(t *testing.T) {
	key := gpgtest.NewKey(t, "CLI Signer", "never")
	dir := t.TempDir()
	served, local, tree := filepath.Join(dir, "served"), filepath.Join(dir, "local"), filepath.Join(dir, "tree")
	testutil.MakeSampleTree(t, tree)
	mustSync(t, "repo", "init", "--repo", served, "--mode=archive")
	mustSync(t, "repo", "commit", "--repo", served, "--branch", "os/main", "--subject", "one", tree)
	out := mustSync(t, "repo", "sign", "--repo", served, "os/main", "--gpg-sign", key.Fingerprint, "--gpg-homedir", key.Home)
	if !strings.Contains(out, key.Fingerprint) {
		t.Fatalf("sign: %s", out)
	}
	seed := bytes.Repeat([]byte{3}, 32)
	priv := ed25519.NewKeyFromSeed(seed)
	edSecret := filepath.Join(dir, "ed.secret")
	os.WriteFile(edSecret, []byte(base64.StdEncoding.EncodeToString(priv)+"\n"), 0o600)
	edPub := base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
	mustSync(t, "repo", "sign", "--repo", served, "os/main", "--sign-type", "ed25519", "--sign-key", edSecret)
	out = mustSync(t, "repo", "summary", "--repo", served, "--update", "--gpg-key", key.SecretFile, "--ed25519-key", edSecret)
	if !strings.Contains(out, "os/main") {
		t.Fatalf("summary: %s", out)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := runSync(t, ctx, "repo", "serve", "--repo", served, "--addr", addr)
		done <- err
	}()
	t.Cleanup(func() { cancel(); <-done })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i > 200 {
			t.Fatal("server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}

	mustSync(t, "repo", "init", "--repo", local, "--mode=bare")
	mustSync(t, "repo", "remote", "add", "--repo", local, "--gpg-import", key.PublicFile,
		"--sign-verify", "ed25519=inline:"+edPub, "origin", "http://"+addr, "os/main")
	out = mustSync(t, "repo", "remote", "list", "--repo", local, "-u")
	if !strings.Contains(out, "origin") || !strings.Contains(out, addr) {
		t.Fatalf("remote list: %s", out)
	}
	out = mustSync(t, "repo", "remote", "show", "--repo", local, "origin")
	if !strings.Contains(out, "gpg-verify: true") || !strings.Contains(out, "sign-verify: true") {
		t.Fatalf("remote show: %s", out)
	}
	out = mustSync(t, "repo", "pull", "--repo", local, "--quiet", "origin")
	if !strings.Contains(out, "origin:os/main -> ") {
		t.Fatalf("pull: %s", out)
	}
	mustSync(t, "repo", "fsck", "--repo", local)
	out = mustSync(t, "repo", "verify", "--repo", local, "--remote", "origin", "origin:os/main")
	if !strings.Contains(out, "Good ostree.gpgsigs") || !strings.Contains(out, "Good ostree.sign.ed25519") {
		t.Fatalf("verify: %s", out)
	}
	// A wrong ed25519 key is refused.
	_, other, _ := ed25519.GenerateKey(nil)
	if out, err := runSync(t, context.Background(), "repo", "verify", "--repo", local, "--ed25519-pubkey", base64.StdEncoding.EncodeToString(other.Public().(ed25519.PublicKey)), "origin:os/main"); err == nil {
		t.Fatalf("verify with the wrong key succeeded: %s", out)
	}
	mustSync(t, "repo", "remote", "delete", "--repo", local, "origin")
	if out := mustSync(t, "repo", "remote", "list", "--repo", local); strings.TrimSpace(out) != "" {
		t.Fatalf("remote list after delete: %q", out)
	}
	if _, err := runSync(t, context.Background(), "repo", "pull", "--repo", local, "origin"); err == nil {
		t.Fatal("pull from a deleted remote succeeded")
	}
}
