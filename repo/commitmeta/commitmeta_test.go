package commitmeta

import (
	"testing"

	"github.com/osupdate/os-update/repo/object"
)

func TestPackageListRoundTrip(t *testing.T) {
	var m object.Metadata
	SetPackageList(&m, []Package{
		{Name: "zlib", Epoch: "0", Version: "1.2", Release: "3", Arch: "x86_64"},
		{Name: "bash", Epoch: "1", Version: "5.2", Release: "1", Arch: "x86_64"},
		{Name: "bash", Epoch: "", Version: "5.2", Release: "1", Arch: "i686"},
	})
	got, ok, err := PackageList(m)
	if err != nil || !ok || len(got) != 3 {
		t.Fatalf("PackageList: %v %v %v", got, ok, err)
	}
	// Sorted by name then arch; epoch 0 recorded as "" (rpm-ostree).
	want := []string{"bash-5.2-1.i686", "bash-1:5.2-1.x86_64", "zlib-1.2-3.x86_64"}
	for i, p := range got {
		if p.String() != want[i] {
			t.Errorf("package %d: %s, want %s", i, p, want[i])
		}
	}
	if got[2].Epoch != "" {
		t.Errorf("epoch 0 stored as %q", got[2].Epoch)
	}
	if _, ok, err := PackageList(object.Metadata{}); ok || err != nil {
		t.Fatalf("no list: %v %v", ok, err)
	}
	SetBootable(&m, "6.1.0")
	if m.String(KeyLinux) != "6.1.0" {
		t.Fatalf("%s = %q", KeyLinux, m.String(KeyLinux))
	}
	if v, ok := m.Get(KeyBootable); !ok || v.Value != true {
		t.Fatalf("%s = %v", KeyBootable, v)
	}
}
