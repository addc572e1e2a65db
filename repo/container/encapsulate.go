package container

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
)

// Labels of the ostree container format (ostree-rs-ext, bootc).
const (
	LabelCommit    = "ostree.commit"
	LabelFinalDiff = "ostree.final-diffid"
	LabelBootc     = "containers.bootc"
	LabelBootable  = "ostree.bootable"
	LabelLinux     = "ostree.linux"
	LabelVersion   = "version"
	// AnnotationComponents names the content groups a layer holds.
	AnnotationComponents = "ostree.components"
)

// DefaultMaxLayers bounds the layer count when the caller gives none.
const DefaultMaxLayers = 64

// EncapsulateOptions controls Encapsulate.
type EncapsulateOptions struct {
	MaxLayers int               // total layers, the commit layer included; 0: DefaultMaxLayers
	Labels    map[string]string // extra config labels
	Insecure  bool              // plain HTTP registry; refused unless the host is loopback
	TmpDir    string            // for layer files; "" for os.TempDir
	// PackageOf, if set, names the package owning a path ("" for none):
	// files are then grouped by package (compose.PackageFiles reads the
	// rpm database of a composed commit).
	PackageOf func(path string) string
}

// Result describes a written image.
type Result struct {
	Commit         object.Checksum
	ManifestDigest string
	Layers         int
}

// chunk is one layer's content: objects with their checkout paths.
type chunk struct {
	name    string // components, comma separated
	objects []object.Checksum
	size    uint64
}

// component groups a path by content: the kernel and its modules, else
// the package owning it when known, else the first three directory levels (usr/lib/NAME, usr/share/NAME), where
// one package's files usually sit together.
func component(p string, packageOf func(string) string) string {
	switch {
	case strings.HasPrefix(p, "/usr/lib/modules/"), strings.HasPrefix(p, "/boot/"), strings.HasPrefix(p, "/usr/lib/ostree-boot/"):
		return "kernel"
	}
	if packageOf != nil {
		if pkg := packageOf(p); pkg != "" {
			return "rpm/" + pkg
		}
	}
	dirs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	dirs = dirs[:len(dirs)-1]
	if len(dirs) > 3 {
		dirs = dirs[:3]
	}
	if len(dirs) == 0 {
		return "root"
	}
	return strings.Join(dirs, "/")
}

// plan splits the commit's content objects into at most maxLayers-1
// chunks; what is left goes to the final (commit) layer. The biggest
// components get their own layers; the layer order follows names, so an
// update that changes one component changes one layer.
func plan(r *repo.Repo, commit object.Checksum, maxLayers int, packageOf func(string) string) ([]chunk, chunk, map[object.Checksum][]string, error) {
	v, err := r.ViewCommit(commit)
	if err != nil {
		return nil, chunk{}, nil, err
	}
	paths := map[object.Checksum][]string{}
	var order []object.Checksum
	err = v.Walk("/", func(e repo.TreeEntry) error {
		if e.IsDir {
			return nil
		}
		if _, ok := paths[e.File]; !ok {
			order = append(order, e.File)
		}
		paths[e.File] = append(paths[e.File], e.Path)
		return nil
	})
	if err != nil {
		return nil, chunk{}, nil, err
	}
	comps := map[string]*chunk{}
	for _, c := range order {
		ps := paths[c]
		sort.Strings(ps)
		name := component(ps[0], packageOf)
		ch := comps[name]
		if ch == nil {
			ch = &chunk{name: name}
			comps[name] = ch
		}
		obj, err := r.OpenContent(c)
		if err != nil {
			return nil, chunk{}, nil, fmt.Errorf("content %s (%s): %w", c, ps[0], err)
		}
		ch.size += obj.Size + 512
		obj.Close()
		ch.objects = append(ch.objects, c)
	}
	all := make([]*chunk, 0, len(comps))
	for _, ch := range comps {
		sort.Slice(ch.objects, func(i, j int) bool { return paths[ch.objects[i]][0] < paths[ch.objects[j]][0] })
		all = append(all, ch)
	}
	sort.Slice(all, func(i, j int) bool {
		if (all[i].name == "kernel") != (all[j].name == "kernel") {
			return all[i].name == "kernel"
		}
		if all[i].size != all[j].size {
			return all[i].size > all[j].size
		}
		return all[i].name < all[j].name
	})
	own := max(maxLayers-1, 0)
	if own > len(all) {
		own = len(all)
	}
	chunks := make([]chunk, 0, own)
	for _, ch := range all[:own] {
		chunks = append(chunks, *ch)
	}
	sort.Slice(chunks, func(i, j int) bool { return chunks[i].name < chunks[j].name })
	var rest chunk
	var restNames []string
	for _, ch := range all[own:] {
		rest.objects = append(rest.objects, ch.objects...)
		rest.size += ch.size
		restNames = append(restNames, ch.name)
	}
	sort.Strings(restNames)
	rest.name = strings.Join(restNames, ",")
	sort.Slice(rest.objects, func(i, j int) bool { return paths[rest.objects[i]][0] < paths[rest.objects[j]][0] })
	return chunks, rest, paths, nil
}

// writeLayer writes one gzip-compressed layer to a file in dir. The
// compressor runs single-threaded with a fixed level and no header time:
// the same input gives the same bytes.
func writeLayer(ctx context.Context, dir string, fn func(*layerWriter) error, r *repo.Repo) (string, error) {
	f, err := os.CreateTemp(dir, "layer-*.tar.gz")
	if err != nil {
		return "", err
	}
	zw, err := gzip.NewWriterLevel(f, gzip.DefaultCompression)
	if err != nil {
		f.Close()
		return "", err
	}
	lw := newLayerWriter(r, zw)
	err = fn(lw)
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = lw.close()
	}
	if err == nil {
		err = zw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// BuildImage turns commit into an OCI image whose layers live in files
// under a temporary directory; call the returned cleanup when done with
// the image.
func BuildImage(ctx context.Context, r *repo.Repo, commit object.Checksum, opts EncapsulateOptions) (v1.Image, func(), error) {
	maxLayers := opts.MaxLayers
	if maxLayers == 0 {
		maxLayers = DefaultMaxLayers
	}
	if maxLayers < 1 {
		return nil, nil, fmt.Errorf("max layers %d: must be at least 1", maxLayers)
	}
	cm, err := r.LoadCommit(commit)
	if err != nil {
		return nil, nil, err
	}
	tmp, err := os.MkdirTemp(opts.TmpDir, "os-update-encapsulate-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(tmp) }
	fail := func(err error) (v1.Image, func(), error) {
		cleanup()
		return nil, nil, fmt.Errorf("encapsulate %s: %w", commit, err)
	}
	chunks, rest, paths, err := plan(r, commit, maxLayers, opts.PackageOf)
	if err != nil {
		return fail(err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	var adds []mutate.Addendum
	addLayer := func(file, comps string, created string) error {
		l, err := tarball.LayerFromFile(file, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return err
		}
		adds = append(adds, mutate.Addendum{
			Layer:       l,
			Annotations: map[string]string{AnnotationComponents: comps},
			History:     v1.History{CreatedBy: created, Created: v1.Time{Time: epoch}},
		})
		return nil
	}
	for _, ch := range chunks {
		file, err := writeLayer(ctx, tmp, func(lw *layerWriter) error {
			if err := lw.repoStructure(); err != nil {
				return err
			}
			for _, c := range ch.objects {
				if err := lw.content(c, paths[c]); err != nil {
					return err
				}
			}
			return nil
		}, r)
		if err != nil {
			return fail(fmt.Errorf("layer %s: %w", ch.name, err))
		}
		if err := addLayer(file, ch.name, "os-update: "+ch.name); err != nil {
			return fail(err)
		}
	}
	file, err := writeLayer(ctx, tmp, func(lw *layerWriter) error {
		if err := lw.structure(commit); err != nil {
			return err
		}
		for _, c := range rest.objects {
			if err := lw.content(c, paths[c]); err != nil {
				return err
			}
		}
		return nil
	}, r)
	if err != nil {
		return fail(fmt.Errorf("commit layer: %w", err))
	}
	if err := addLayer(file, rest.name, "os-update: ostree commit "+commit.String()); err != nil {
		return fail(err)
	}
	img, err = mutate.Append(img, adds...)
	if err != nil {
		return fail(err)
	}
	final, err := adds[len(adds)-1].Layer.DiffID()
	if err != nil {
		return fail(err)
	}
	labels := map[string]string{
		LabelCommit:    commit.String(),
		LabelFinalDiff: final.String(),
		LabelBootc:     "1",
		LabelBootable:  "true",
	}
	if v := cm.Version(); v != "" {
		labels[LabelVersion] = v
	}
	if kver, err := kernelVersion(r, commit); err == nil {
		labels[LabelLinux] = kver
	}
	for k, v := range opts.Labels {
		labels[k] = v
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fail(err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = goArch(), "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Labels = labels
	cf.Config.Cmd = []string{"/sbin/init"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return fail(err)
	}
	return img, cleanup, nil
}

// kernelVersion finds usr/lib/modules/KVER/vmlinuz in the commit.
func kernelVersion(r *repo.Repo, commit object.Checksum) (string, error) {
	v, err := r.ViewCommit(commit)
	if err != nil {
		return "", err
	}
	return kernelIn(v)
}

func kernelIn(v *repo.TreeView) (string, error) {
	mods, err := v.Lookup("/usr/lib/modules")
	if err != nil || !mods.IsDir {
		return "", fmt.Errorf("no kernel: /usr/lib/modules is missing")
	}
	ents, err := v.ReadDir(mods)
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if !e.IsDir {
			continue
		}
		if ok, _ := v.IsRegular(e.Path + "/vmlinuz"); ok {
			return e.Name(), nil
		}
	}
	return "", fmt.Errorf("no kernel: no /usr/lib/modules/*/vmlinuz")
}

// Encapsulate writes commit (a ref or checksum) as an image to dest
// (oci:PATH[:TAG], oci-archive:PATH[:TAG] or docker://HOST/NAME:TAG).
func Encapsulate(ctx context.Context, r *repo.Repo, rev, dest string, opts EncapsulateOptions) (Result, error) {
	commit, err := r.ResolveRev(rev)
	if err != nil {
		return Result{}, fmt.Errorf("encapsulate %s: %w", rev, err)
	}
	ref, err := ParseImageRef(dest)
	if err != nil {
		return Result{}, err
	}
	if opts.TmpDir == "" {
		opts.TmpDir = filepath.Join(r.Path(), "tmp")
	}
	img, cleanup, err := BuildImage(ctx, r, commit, opts)
	if err != nil {
		return Result{}, err
	}
	defer cleanup()
	if err := ref.write(ctx, img, opts.Insecure); err != nil {
		return Result{}, fmt.Errorf("encapsulate %s to %s: %w", rev, dest, err)
	}
	d, err := img.Digest()
	if err != nil {
		return Result{}, err
	}
	ls, _ := img.Layers()
	return Result{Commit: commit, ManifestDigest: d.String(), Layers: len(ls)}, nil
}
