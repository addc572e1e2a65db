package daemon

import (
	"fmt"
	"sort"

	"github.com/osupdate/os-update/compose/rpmver"
	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/commitmeta"
	"github.com/osupdate/os-update/repo/object"
)

type pkg struct {
	name, arch string
	evr        rpmver.EVR
	text       string // name-[epoch:]version-release.arch
}

// packageList reads a commit's recorded packages.
func packageList(r *repo.Repo, c object.Checksum) (map[string]pkg, error) {
	cm, err := r.LoadCommit(c)
	if err != nil {
		return nil, err
	}
	list, ok, err := commitmeta.PackageList(cm.Metadata)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", c, err)
	}
	if !ok {
		return nil, fmt.Errorf("commit %s records no package list (%s): it was not composed from packages", c, commitmeta.KeyPackageList)
	}
	out := map[string]pkg{}
	for _, p := range list {
		evr, err := rpmver.Parse(p.EVR())
		if err != nil {
			return nil, fmt.Errorf("commit %s: package %s: %w", c, p.Name, err)
		}
		out[p.Name+"."+p.Arch] = pkg{name: p.Name, arch: p.Arch, evr: evr, text: p.String()}
	}
	return out, nil
}

// diffPackages compares the package lists of two commits.
func diffPackages(r *repo.Repo, from, to object.Checksum) (*api.PackageDiff, error) {
	a, err := packageList(r, from)
	if err != nil {
		return nil, err
	}
	b, err := packageList(r, to)
	if err != nil {
		return nil, err
	}
	d := &api.PackageDiff{From: from.String(), To: to.String(), Added: []string{}, Removed: []string{},
		Upgraded: []api.PackageChange{}, Downgraded: []api.PackageChange{}}
	for k, p := range b {
		old, ok := a[k]
		switch {
		case !ok:
			d.Added = append(d.Added, p.text)
		case rpmver.CompareEVR(old.evr, p.evr) < 0:
			d.Upgraded = append(d.Upgraded, api.PackageChange{Name: p.name, From: old.text, To: p.text})
		case rpmver.CompareEVR(old.evr, p.evr) > 0:
			d.Downgraded = append(d.Downgraded, api.PackageChange{Name: p.name, From: old.text, To: p.text})
		}
	}
	for k, p := range a {
		if _, ok := b[k]; !ok {
			d.Removed = append(d.Removed, p.text)
		}
	}
	sort.Strings(d.Added)
	sort.Strings(d.Removed)
	sort.Slice(d.Upgraded, func(i, j int) bool { return d.Upgraded[i].Name < d.Upgraded[j].Name })
	sort.Slice(d.Downgraded, func(i, j int) bool { return d.Downgraded[i].Name < d.Downgraded[j].Name })
	return d, nil
}
