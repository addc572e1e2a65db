package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/internal/deployinfo"
	"github.com/osupdate/os-update/repo/container"
	"github.com/osupdate/os-update/repo/keyfile"
	"github.com/osupdate/os-update/repo/remote"
	"github.com/osupdate/os-update/sysroot"
)

// The origin of an image-based deployment: rpm-ostree's and bootc's key
// for the image it follows, and os-update's record of the manifest it
// was deployed from (the commit of an image keeps its checksum, so the
// digest cannot live in the commit) and of --insecure.
const (
	originImageKey    = deployinfo.OriginImageKey
	osUpdateGroup     = deployinfo.OSUpdateGroup
	originDigestKey   = deployinfo.OriginDigestKey
	originInsecureKey = "container-image-insecure"
)

// imageRefPrefix is where imported images are recorded, one ref per
// image reference, as ostree-ext does.
const imageRefPrefix = "ostree/container/image/"

// imageOf returns the image reference a deployment follows, or "".
func imageOf(d *sysroot.Deployment) string { return deployinfo.ImageReference(d) }

func imageDigestOf(d *sysroot.Deployment) string { return deployinfo.ImageDigest(d) }

// imageRefName is the local ref an image reference is imported to: the
// reference with every byte outside [A-Za-z0-9] escaped as _XX_.
func imageRefName(imageRef string) string {
	var b strings.Builder
	b.WriteString(imageRefPrefix)
	for i := 0; i < len(imageRef); i++ {
		c := imageRef[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "_%02X_", c)
		}
	}
	return b.String()
}

// imageUpgrade imports the image a deployment follows (or, for a rebase,
// imageRef) and deploys it: only the layers the repository does not hold
// are downloaded, and an unchanged manifest digest is no update. The
// refusals (older commit, other OS, no kernel) come before deploying.
func (b *HostBackend) imageUpgrade(ctx context.Context, s *sysroot.Sysroot, st *sysroot.Status, req Request, rep Reporter, rebaseTo string) (Result, error) {
	cur, err := current(st)
	if err != nil {
		return Result{}, err
	}
	res := Result{From: cur.Commit.String()}
	imageRef, insecure := rebaseTo, req.Insecure
	if rebaseTo == "" {
		imageRef = imageOf(cur)
		insecure, _ = cur.Origin.Bool(osUpdateGroup, originInsecureKey, false)
	}
	src, err := container.ParseSourceRef(imageRef)
	if err != nil {
		return res, err
	}
	if !requestsOf(cur).Empty() {
		return res, fmt.Errorf("%s: package layering on an image-based deployment is not supported: remove the layered packages and overrides first", imageRef)
	}
	sameImage := imageOf(cur) == imageRef
	if req.Check || req.Preview {
		rep.Stage("check") // the manifest digest only
	} else {
		rep.Stage("download")
	}
	digest, err := container.ManifestDigest(ctx, imageRef, insecure, filepath.Join(s.Repo().Path(), "tmp"))
	if err != nil {
		return res, err
	}
	if sameImage && digest == imageDigestOf(cur) {
		res.NoUpdate = true
		rep.Message(fmt.Sprintf("No update: %s is still %s", imageRef, digest))
		return res, nil
	}
	if req.Check || req.Preview {
		rep.Message(fmt.Sprintf("Update available: %s %s", imageRef, digest))
		return res, nil
	}
	opts := container.ImportOptions{Ref: imageRefName(imageRef), Insecure: insecure, Log: messageWriter{rep}}
	if src.Remote != "" {
		store := &remote.Store{Repo: s.Repo(), ExtraDirs: b.cfg.RemotesDirs}
		rm, err := store.Get(src.Remote) // its errors name the remote
		if err != nil {
			return res, err
		}
		if opts.Verifiers, err = store.Verifiers(rm, false); err != nil {
			return res, err
		}
		if len(opts.Verifiers) == 0 {
			return res, fmt.Errorf("remote %s verifies no signatures (gpg-verify and sign-verify are off): use ostree-unverified-image: to deploy without a check", src.Remote)
		}
	}
	// The ref moves only if everything is accepted; a refused image
	// leaves it where it was.
	prev, _ := s.Repo().ReadRef("", opts.Ref)
	restore := func() {
		if err := s.Repo().SetRef("", opts.Ref, prev); err != nil {
			rep.Message(fmt.Sprintf("warning: restore ref %s: %v", opts.Ref, err))
		}
	}
	ir, err := container.Import(ctx, s.Repo(), imageRef, opts)
	if err != nil {
		return res, err
	}
	c := ir.Commit
	rep.Message(fmt.Sprintf("Image %s: %d layers fetched, %d already held", ir.ManifestDigest, len(ir.Fetched), len(ir.Held)))
	newCm, err := s.Repo().LoadCommit(c)
	if err != nil {
		restore()
		return res, err
	}
	res.Cached = &api.CachedUpdate{Refspec: imageRef, Checksum: c.String(), Version: newCm.Version(),
		Timestamp: int64(newCm.Timestamp), CheckedAt: time.Now().Unix(), Available: true}
	if sameImage && c == cur.Commit {
		// A new manifest around the same commit (labels, rebuilt
		// config): record the digest with the next deployment.
		rep.Message(fmt.Sprintf("%s: manifest %s carries the deployed commit %s", imageRef, ir.ManifestDigest, c))
	}
	if !req.AllowDowngrade && sameImage {
		if base, baseTime, older := newerThan(s.Repo(), cur.Commit, newCm.Timestamp); older {
			restore()
			return res, fmt.Errorf("%s (%s) is older than the current commit %s (%s): refusing to downgrade (pass --allow-downgrade)",
				c, fmtUnix(newCm.Timestamp), base, fmtUnix(baseTime))
		}
	}
	if !sameImage {
		oldID, newID := osID(s.Repo(), cur.Commit), osID(s.Repo(), c)
		if oldID != "" && newID != "" && oldID != newID {
			restore()
			return res, fmt.Errorf("%s is a different operating system (%s, current %s): install it in its own stateroot instead of rebasing", imageRef, newID, oldID)
		}
	}
	res.To = c.String()
	if req.DownloadOnly {
		rep.Message(fmt.Sprintf("Downloaded %s %s; deploy it with os-update upgrade", newCm.Version(), c))
		return res, nil
	}
	if err := ctx.Err(); err != nil {
		restore()
		return res, err
	}
	rep.Stage("deploy")
	origin := keyfile.New()
	origin.Set("origin", originImageKey, imageRef)
	origin.Set(osUpdateGroup, originDigestKey, ir.ManifestDigest)
	if insecure {
		origin.Set(osUpdateGroup, originInsecureKey, "true")
	}
	if _, err := s.Deploy(ctx, sysroot.DeployOptions{OS: cur.OS, Commit: c, Origin: origin, Stage: req.Stage}); err != nil {
		restore()
		return res, err
	}
	res.Deployed = true
	if req.Stage {
		rep.Message(fmt.Sprintf("Staged %s %s from %s; it becomes the default when the system shuts down (os-update finalize)", newCm.Version(), c, imageRef))
	} else {
		rep.Message(fmt.Sprintf("Deployed %s %s from %s; it boots next", newCm.Version(), c, imageRef))
	}
	return res, nil
}
