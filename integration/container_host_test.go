package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
)

// registryManifest reads an image's manifest digest and layer digests
// from the registry's HTTP API.
func registryManifest(t *testing.T, addr, name, tag string) (string, []string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v2/"+name+"/manifests/"+tag, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Layers []struct{ Digest string } `json:"layers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	var layers []string
	for _, l := range m.Layers {
		layers = append(layers, l.Digest)
	}
	return resp.Header.Get("Docker-Content-Digest"), layers
}

var manifestOut = regexp.MustCompile(`manifest (sha256:[0-9a-f]{64})`)

// encapsulatePush writes a commit of the server repository to the
// registry and returns the manifest digest it reports.
func (h *host) encapsulatePush(rev, dest string) string {
	h.t.Helper()
	out := osu(h.t, "compose", "container-encapsulate", "--repo", h.server.Path(), "--insecure", "--group-by-path", rev, dest)
	m := manifestOut.FindStringSubmatch(out)
	if m == nil {
		h.t.Fatalf("encapsulate output: %s", out)
	}
	return m[1]
}

// A sysroot is rebased through the daemon to an image in a registry on
// loopback, follows its tag with upgrade (fetching only the changed
// layers), rolls back like with any commit, and refuses an image without
// a kernel with nothing deployed.
func TestHostRebaseToContainerImageUpgradeRollback(t *testing.T) {
	h := newHost(t)
	reg := testutil.StartRegistry(t, "")
	addr := reg.Addr
	imgRef := "ostree-unverified-registry:" + addr + "/testos:stable"

	// The same content in both versions but for os-release and one file.
	fixed := func(tool string) map[string]string {
		m := map[string]string{
			"usr/lib/modules/6.1.0/vmlinuz":       "kernel\n",
			"usr/lib/modules/6.1.0/initramfs.img": "initramfs\n",
			"usr/bin/tool":                        tool,
		}
		for i := 0; i < 200; i++ {
			m[fmt.Sprintf("usr/share/data/f%03d", i)] = strings.Repeat(fmt.Sprintf("data %d\n", i), 50)
		}
		return m
	}
	v1 := h.publish("10", fixed("tool 10\n"))
	d1 := h.encapsulatePush(v1.String(), "docker://"+addr+"/testos:stable")
	_, layers1 := registryManifest(t, addr, "testos", "stable")

	h.mustClient("rebase", "--insecure", imgRef)
	st := h.status()
	d := st.Deployments[0]
	if len(st.Deployments) != 2 || d.Checksum != v1.String() || d.ContainerImageReference != imgRef || d.ContainerImageDigest != d1 || d.Origin != imgRef || d.Version != "10" {
		t.Fatalf("after rebase to the image: %+v", st.Deployments)
	}
	origin := string(mustRead(t, filepath.Join(h.sysroot, "ostree/deploy", testOS, "deploy", fmt.Sprintf("%s.%d.origin", d.Checksum, d.Serial))))
	if !strings.Contains(origin, "container-image-reference="+imgRef) {
		t.Fatalf("origin file:\n%s", origin)
	}
	text := h.mustClient("status")
	if !strings.Contains(text, "Image: "+imgRef) || !strings.Contains(text, "ImageDigest: "+d1) {
		t.Fatalf("status text:\n%s", text)
	}

	// The tag has not moved: no update, nothing downloaded but the manifest.
	off := reg.LogSize(t)
	if _, _, err := h.client("upgrade", "--check"); exitCode(err) != 77 {
		t.Fatalf("upgrade --check with the tag unchanged: %v, want exit 77 (no update)", err)
	}
	if out := h.mustClient("upgrade"); !strings.Contains(out, "No update available") {
		t.Fatalf("upgrade with the tag unchanged: %s", out)
	}
	if n := len(h.status().Deployments); n != 2 {
		t.Fatalf("upgrade with the tag unchanged deployed: %d deployments", n)
	}
	if got := reg.BlobGets(t, off); len(got) != 0 {
		t.Fatalf("no-update check downloaded blobs %v", got)
	}

	// v2 changes one file; only its layers are downloaded.
	v2 := h.publish("11", fixed("tool version 11, changed\n"))
	d2 := h.encapsulatePush(v2.String(), "docker://"+addr+"/testos:stable")
	_, layers2 := registryManifest(t, addr, "testos", "stable")
	old := map[string]bool{}
	for _, l := range layers1 {
		old[l] = true
	}
	var changed []string
	for _, l := range layers2 {
		if !old[l] {
			changed = append(changed, l)
		}
	}
	sort.Strings(changed)
	if len(changed) == 0 || len(changed) >= len(layers2) {
		t.Fatalf("v2 changes %d of %d layers; the test needs some but not all", len(changed), len(layers2))
	}
	off = reg.LogSize(t)
	upOut := h.mustClient("upgrade")
	var fetchedLayers []string
	for _, g := range reg.BlobGets(t, off) {
		for _, l := range layers2 {
			if g == l {
				fetchedLayers = append(fetchedLayers, g)
			}
		}
	}
	sort.Strings(fetchedLayers)
	if strings.Join(fetchedLayers, " ") != strings.Join(changed, " ") {
		t.Fatalf("upgrade fetched layers %v, want only the changed %v (of %d)\n%s", fetchedLayers, changed, len(layers2), upOut)
	}
	st = h.status()
	if st.Deployments[0].Checksum != v2.String() || st.Deployments[0].ContainerImageDigest != d2 || st.Deployments[1].Checksum != v1.String() || !st.Deployments[1].Rollback {
		t.Fatalf("after upgrade: %+v", st.Deployments)
	}
	if b := mustRead(t, filepath.Join(h.sysroot, "ostree/deploy", testOS, "deploy", fmt.Sprintf("%s.%d", v2, st.Deployments[0].Serial), "usr/bin/tool")); string(b) != "tool version 11, changed\n" {
		t.Fatalf("deployed usr/bin/tool: %q", b)
	}

	// Rollback as with any commit.
	h.mustClient("rollback")
	st = h.status()
	if st.Deployments[0].Checksum != v1.String() || st.Deployments[0].ContainerImageDigest != d1 || st.Deployments[1].Checksum != v2.String() {
		t.Fatalf("after rollback: %+v", st.Deployments)
	}

	// An image without a kernel is refused; nothing is deployed.
	bad := filepath.Join(h.dir, "tree-nokernel")
	os.MkdirAll(filepath.Join(bad, "usr/lib"), 0o755)
	os.WriteFile(filepath.Join(bad, "usr/lib/os-release"), []byte("ID=testos\n"), 0o644)
	bc, err := h.server.CommitDir(context.Background(), bad, repo.CommitOptions{Branch: "testos/nokernel", Subject: "no kernel", Timestamp: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	h.encapsulatePush(bc.String(), "docker://"+addr+"/testos:nokernel")
	before := h.status().Deployments
	if _, errOut, err := h.client("rebase", "--insecure", "ostree-unverified-registry:"+addr+"/testos:nokernel"); err == nil || !strings.Contains(errOut, "not bootable") {
		t.Fatalf("rebase to an image without a kernel: %v %s", err, errOut)
	}
	after := h.status().Deployments
	if len(after) != len(before) || after[0].Checksum != before[0].Checksum || after[1].Checksum != before[1].Checksum {
		t.Fatalf("a refused image changed the deployments: %+v -> %+v", before, after)
	}
	dirs, _ := filepath.Glob(filepath.Join(h.sysroot, "ostree/deploy", testOS, "deploy", bc.String()+".*"))
	if len(dirs) != 0 {
		t.Fatalf("refused image left deployment directories %v", dirs)
	}
}

// ostree-remote-image: deploys only images whose commit is signed with the
// remote's keys; an older image on the followed tag is refused unless
// --allow-downgrade.
func TestHostContainerImageSignedAndDowngrade(t *testing.T) {
	h := newHost(t)
	addr := testutil.StartRegistry(t, "").Addr
	v1 := h.publish("10", nil)
	h.encapsulatePush(v1.String(), "docker://"+addr+"/testos:stable")
	// The same tree, committed without a signature.
	unsigned, err := h.server.CommitDir(context.Background(), filepath.Join(h.dir, "tree-10"), repo.CommitOptions{Branch: "testos/unsigned", Subject: "unsigned", Timestamp: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	h.encapsulatePush(unsigned.String(), "docker://"+addr+"/testos:unsigned")

	if _, errOut, err := h.client("rebase", "--insecure", "ostree-remote-image:origin:docker://"+addr+"/testos:unsigned"); err == nil || !strings.Contains(errOut, "signature") {
		t.Fatalf("rebase to an unsigned image with ostree-remote-image: %v %s", err, errOut)
	}
	if st := h.status(); len(st.Deployments) != 1 {
		t.Fatalf("a refused unsigned image was deployed: %+v", st.Deployments)
	}
	ref := "ostree-remote-image:origin:docker://" + addr + "/testos:stable"
	h.mustClient("rebase", "--insecure", ref)
	if st := h.status(); len(st.Deployments) != 2 || st.Deployments[0].Checksum != v1.String() || st.Deployments[0].ContainerImageReference != ref {
		t.Fatalf("after rebase to the signed image: %+v", st.Deployments)
	}

	// An older commit pushed to the tag.
	h.at = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	old := h.publish("9", nil)
	h.encapsulatePush(old.String(), "docker://"+addr+"/testos:stable")
	if _, errOut, err := h.client("upgrade"); err == nil || !strings.Contains(errOut, "refusing to downgrade") {
		t.Fatalf("upgrade to an older image: %v %s", err, errOut)
	}
	if st := h.status(); len(st.Deployments) != 2 || st.Deployments[0].Checksum != v1.String() {
		t.Fatalf("a refused older image was deployed: %+v", st.Deployments)
	}
	h.mustClient("upgrade", "--allow-downgrade")
	if st := h.status(); st.Deployments[0].Checksum != old.String() || st.Deployments[1].Checksum != v1.String() {
		t.Fatalf("after upgrade --allow-downgrade: %+v", st.Deployments)
	}
}

// ostree-unverified-image:oci:PATH: an image in an OCI layout directory
// deploys through the daemon; upgrade follows the layout's tag.
func TestHostContainerImageOCILayout(t *testing.T) {
	h := newHost(t)
	dir := filepath.Join(h.dir, "layout")
	v1 := h.publish("10", nil)
	d1 := h.encapsulatePush(v1.String(), "oci:"+dir+":stable")
	ref := "ostree-unverified-image:oci:" + dir + ":stable"
	h.mustClient("rebase", ref)
	st := h.status()
	if len(st.Deployments) != 2 || st.Deployments[0].Checksum != v1.String() || st.Deployments[0].ContainerImageDigest != d1 {
		t.Fatalf("after rebase to the OCI layout: %+v", st.Deployments)
	}
	v2 := h.publish("11", nil)
	d2 := h.encapsulatePush(v2.String(), "oci:"+dir+":stable")
	if d2 == d1 {
		t.Fatal("v2 has v1's manifest digest")
	}
	h.mustClient("upgrade")
	st = h.status()
	if st.Deployments[0].Checksum != v2.String() || st.Deployments[0].ContainerImageDigest != d2 || st.Deployments[0].ContainerImageReference != ref {
		t.Fatalf("after upgrade from the OCI layout: %+v", st.Deployments)
	}
}
