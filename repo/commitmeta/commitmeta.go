// Package commitmeta is the one home of the commit metadata conventions
// os-update writes and reads beyond the commit object itself: libostree's
// bootable keys and rpm-ostree's package list. Writers and readers use
// the same functions, so the format is defined once.
package commitmeta

import (
	"fmt"
	"sort"

	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
)

const (
	// KeyLinux is the kernel version of a bootable commit (libostree).
	KeyLinux = "ostree.linux"
	// KeyBootable marks a commit that has a kernel (libostree).
	KeyBootable = "ostree.bootable"
	// KeyPackageList is the installed package list, type a(sssss):
	// (name, epoch, version, release, arch) sorted by name then arch;
	// epoch is "" when zero. rpm-ostree's key and format.
	KeyPackageList = "rpmostree.rpmdb.pkglist"
)

// SetBootable records that the commit boots kernel kver, as
// `ostree commit --bootable` does.
func SetBootable(m *object.Metadata, kver string) {
	m.Set(KeyLinux, gvariant.NewVariant("s", kver))
	m.Set(KeyBootable, gvariant.NewVariant("b", true))
}

// Package is one entry of the package list.
type Package struct {
	Name, Epoch, Version, Release, Arch string
}

// EVR is [EPOCH:]VERSION-RELEASE (no epoch when it is empty or 0).
func (p Package) EVR() string {
	evr := p.Version + "-" + p.Release
	if p.Epoch != "" && p.Epoch != "0" {
		evr = p.Epoch + ":" + evr
	}
	return evr
}

// String is NAME-EVR.ARCH.
func (p Package) String() string { return p.Name + "-" + p.EVR() + "." + p.Arch }

// SetPackageList records pkgs (in any order) under KeyPackageList.
func SetPackageList(m *object.Metadata, pkgs []Package) {
	sorted := append([]Package(nil), pkgs...)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].Name != sorted[j].Name {
			return sorted[i].Name < sorted[j].Name
		}
		return sorted[i].Arch < sorted[j].Arch
	})
	list := []gvariant.Value{}
	for _, p := range sorted {
		epoch := p.Epoch
		if epoch == "0" {
			epoch = ""
		}
		list = append(list, []gvariant.Value{p.Name, epoch, p.Version, p.Release, p.Arch})
	}
	m.Set(KeyPackageList, gvariant.NewVariant("a(sssss)", list))
}

// PackageList reads the package list; ok is false when the commit
// records none.
func PackageList(m object.Metadata) (pkgs []Package, ok bool, err error) {
	v, ok := m.Get(KeyPackageList)
	if !ok {
		return nil, false, nil
	}
	if v.Type.String() != "a(sssss)" {
		return nil, true, fmt.Errorf("%s has type %s, want a(sssss)", KeyPackageList, v.Type)
	}
	for _, it := range v.Value.([]gvariant.Value) {
		f := it.([]gvariant.Value)
		pkgs = append(pkgs, Package{Name: f[0].(string), Epoch: f[1].(string), Version: f[2].(string), Release: f[3].(string), Arch: f[4].(string)})
	}
	return pkgs, true, nil
}
