package layer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/osupdate/os-update/internal/fsutil"
	"github.com/osupdate/os-update/repo/keyfile"
)

// Origin file keys for layered deployments, as rpm-ostree writes them: a
// layered deployment's origin names its base with baserefspec (instead
// of refspec) and lists the requests, which upgrade, rebase and deploy
// apply again to the new base.
const (
	OriginGroup       = "origin"
	OriginBaseRefspec = "baserefspec"
	PackagesGroup     = "packages"
	OverridesGroup    = "overrides"
	keyRequested      = "requested"       // [packages] names
	keyRequestedLocal = "requested-local" // [packages] local .rpm files (kept copies)
	keyRemove         = "remove"          // [overrides]
	keyReplace        = "replace"         // [overrides] NEVRAs from repositories
	keyReplaceLocal   = "replace-local"   // [overrides] local .rpm files (kept copies)
)

// SetOrigin records the base refspec and the requests in an origin file.
// With no requests the origin is a plain one again (refspec=).
func SetOrigin(f *keyfile.File, baseRefspec string, req Requests) {
	f.Delete(OriginGroup, "refspec")
	f.Delete(OriginGroup, OriginBaseRefspec)
	f.DeleteGroup(PackagesGroup)
	f.DeleteGroup(OverridesGroup)
	if req.Empty() {
		f.Set(OriginGroup, "refspec", baseRefspec)
		return
	}
	f.Set(OriginGroup, OriginBaseRefspec, baseRefspec)
	var names, locals, repl, replLocal []string
	for _, q := range req.Install {
		if isLocalFile(q) {
			locals = append(locals, q)
		} else {
			names = append(names, q)
		}
	}
	for _, q := range req.Replace {
		if isLocalFile(q) {
			replLocal = append(replLocal, q)
		} else {
			repl = append(repl, q)
		}
	}
	set := func(g, k string, l []string) {
		if len(l) > 0 {
			f.SetList(g, k, l)
		}
	}
	set(PackagesGroup, keyRequested, names)
	set(PackagesGroup, keyRequestedLocal, locals)
	set(OverridesGroup, keyRemove, req.Remove)
	set(OverridesGroup, keyReplace, repl)
	set(OverridesGroup, keyReplaceLocal, replLocal)
}

// OriginRequests reads what SetOrigin wrote: the base refspec (refspec=
// for an origin without requests) and the requests.
func OriginRequests(f *keyfile.File) (string, Requests) {
	var req Requests
	req.Install = append(f.List(PackagesGroup, keyRequested), f.List(PackagesGroup, keyRequestedLocal)...)
	req.Remove = f.List(OverridesGroup, keyRemove)
	req.Replace = append(f.List(OverridesGroup, keyReplace), f.List(OverridesGroup, keyReplaceLocal)...)
	if base, ok := f.Get(OriginGroup, OriginBaseRefspec); ok {
		return base, req
	}
	return f.String(OriginGroup, "refspec", ""), req
}

// KeepLocal copies a local package into dir (CacheDir/local) under its
// SHA-256, so that the request survives the user's file and can be
// applied again on the next upgrade; it returns the kept path.
func KeepLocal(dir, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("keep %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("keep %s: %w", path, err)
	}
	dst := filepath.Join(dir, hex.EncodeToString(h.Sum(nil))+"-"+filepath.Base(path))
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return "", fmt.Errorf("keep %s: %w", path, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := fsutil.WriteFileAtomic(dst, data, 0o644, true); err != nil {
		return "", fmt.Errorf("keep %s: %w", path, err)
	}
	return dst, nil
}
