// Package deployinfo describes a sysroot's deployments in the one JSON
// schema, api.Deployment, that `os-update status --json`, `os-update admin
// status --json` and the daemon's GetStatus document share (fields:
// docs/json.md). Both the daemon and the offline commands build it here,
// so the field names and their meaning cannot drift apart.
package deployinfo

import (
	"fmt"

	"github.com/osupdate/os-update/compose/layer"
	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/sysroot"
)

// Origin keys of a deployment of a container image: the reference it
// follows (in [origin], as ostree-ext writes it) and the manifest digest it
// came from (ours, in [os-update]).
const (
	OriginImageKey  = "container-image-reference"
	OSUpdateGroup   = "os-update"
	OriginDigestKey = "container-image-digest"
)

// ImageReference is the image a deployment follows, or "".
func ImageReference(d *sysroot.Deployment) string {
	if d == nil || d.Origin == nil {
		return ""
	}
	return d.Origin.String("origin", OriginImageKey, "")
}

// ImageDigest is the manifest digest a deployment of an image came from.
func ImageDigest(d *sysroot.Deployment) string {
	if d == nil || d.Origin == nil {
		return ""
	}
	return d.Origin.String(OSUpdateGroup, OriginDigestKey, "")
}

// ID names a deployment: OSNAME/CHECKSUM.SERIAL (also the key of boot
// verdicts).
func ID(osname, checksum string, serial int) string {
	return fmt.Sprintf("%s/%s.%d", osname, checksum, serial)
}

// Describe returns the sysroot's deployments in boot order (a staged one
// first), with the roles of sysroot.Status.
func Describe(s *sysroot.Sysroot) []api.Deployment {
	out := []api.Deployment{}
	for i, d := range s.Status().Deployments {
		ad := Of(s.Repo(), i, d)
		// The boot loader counts the boots of the boot-configured default
		// while it is on trial (an unreadable counter shows as none; the
		// daemon's status warns about it).
		if len(s.Deployments) > 0 && d.Deployment == s.Deployments[0] {
			if bc, err := s.BootCount(); err == nil && bc.Counting {
				ad.BootTries = &api.BootTries{Method: bc.Method, Left: bc.Left, Done: bc.Done}
			}
		}
		out = append(out, ad)
	}
	return out
}

// Of describes one deployment at index i of the boot order; r is the
// sysroot's repository (commit subject, timestamp, layering metadata).
func Of(r *repo.Repo, i int, d *sysroot.DeploymentStatus) api.Deployment {
	ad := api.Deployment{
		ID: ID(d.OS, d.Commit.String(), d.Serial), Index: i, OSName: d.OS,
		Checksum: d.Commit.String(), Serial: d.Serial, BootCsum: d.BootCsum, BootSerial: d.BootSerial,
		Origin: d.Refspec(), Version: d.Version, Unlocked: api.UnlockedNone,
		Booted: d.Booted, Default: d.Default, Staged: d.Staged, Pending: d.Pending, Rollback: d.Rollback,
		Pinned: d.Pinned(), Kargs: []string(d.Kargs),
	}
	if ad.Kargs == nil {
		ad.Kargs = []string{}
	}
	if d.Origin != nil {
		if u := d.Origin.String("origin", "unlocked", ""); u != "" {
			ad.Unlocked = u
		}
		_, req := layer.OriginRequests(d.Origin)
		ad.Packages = req.Install
	}
	if cm, err := r.LoadCommit(d.Commit); err == nil {
		ad.Timestamp, ad.Subject = int64(cm.Timestamp), cm.Subject
		if base := cm.Metadata.String(layer.KeyBase); base != "" {
			ad.BaseChecksum = base
			ad.Layered = metaStrings(cm.Metadata, layer.KeyLayered)
			ad.Removed = metaStrings(cm.Metadata, layer.KeyRemoved)
			ad.Replaced = metaStrings(cm.Metadata, layer.KeyReplaced)
		}
	}
	if img := ImageReference(d.Deployment); img != "" {
		ad.ContainerImageReference, ad.ContainerImageDigest = img, ImageDigest(d.Deployment)
		if ad.Origin == "" {
			ad.Origin = img
		}
	}
	return ad
}

// metaStrings reads an "as" value of commit metadata.
func metaStrings(m object.Metadata, key string) []string {
	v, ok := m.Get(key)
	if !ok {
		return nil
	}
	items, _ := v.Value.([]gvariant.Value)
	var out []string
	for _, it := range items {
		if s, ok := it.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
