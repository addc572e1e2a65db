package container

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Transport names where an image lives.
type Transport string

const (
	TransportOCI        Transport = "oci"
	TransportOCIArchive Transport = "oci-archive"
	TransportRegistry   Transport = "docker"
)

// refNameAnnotation tags a manifest in an OCI layout's index.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// ImageRef is a parsed image reference.
type ImageRef struct {
	Transport Transport
	Path      string // oci, oci-archive
	Tag       string // oci, oci-archive: the index's ref name, "" for the only image
	Name      string // docker: HOST/NAME:TAG or HOST/NAME@DIGEST
}

func (r ImageRef) String() string {
	switch r.Transport {
	case TransportRegistry:
		return "docker://" + r.Name
	default:
		if r.Tag != "" {
			return string(r.Transport) + ":" + r.Path + ":" + r.Tag
		}
		return string(r.Transport) + ":" + r.Path
	}
}

// ParseImageRef parses oci:PATH[:TAG], oci-archive:PATH[:TAG] and
// docker://HOST/NAME[:TAG|@DIGEST], the transports skopeo names the same.
func ParseImageRef(s string) (ImageRef, error) {
	if rest, ok := strings.CutPrefix(s, "docker://"); ok {
		if rest == "" {
			return ImageRef{}, fmt.Errorf("image reference %q: empty registry name", s)
		}
		if _, err := name.ParseReference(rest, name.StrictValidation); err != nil {
			return ImageRef{}, fmt.Errorf("image reference %q: %w", s, err)
		}
		return ImageRef{Transport: TransportRegistry, Name: rest}, nil
	}
	for _, t := range []Transport{TransportOCIArchive, TransportOCI} {
		rest, ok := strings.CutPrefix(s, string(t)+":")
		if !ok {
			continue
		}
		ref := ImageRef{Transport: t, Path: rest}
		if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i+1:], "/") {
			ref.Path, ref.Tag = rest[:i], rest[i+1:]
		}
		if ref.Path == "" {
			return ImageRef{}, fmt.Errorf("image reference %q: empty path", s)
		}
		return ref, nil
	}
	return ImageRef{}, fmt.Errorf("image reference %q: want oci:PATH, oci-archive:PATH or docker://HOST/NAME:TAG", s)
}

// isLoopback reports whether a registry host (with optional port) is on
// this machine.
func isLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

func (r ImageRef) registryRef(insecure bool) (name.Reference, error) {
	opts := []name.Option{name.StrictValidation}
	if insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(r.Name, opts...)
	if err != nil {
		return nil, err
	}
	if insecure && !isLoopback(ref.Context().RegistryStr()) {
		return nil, fmt.Errorf("registry %s: --insecure (plain HTTP, no TLS verification) is allowed only for a loopback registry", ref.Context().RegistryStr())
	}
	return ref, nil
}

func remoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
}

func (r ImageRef) write(ctx context.Context, img v1.Image, insecure bool) error {
	switch r.Transport {
	case TransportRegistry:
		ref, err := r.registryRef(insecure)
		if err != nil {
			return err
		}
		return remote.Write(ref, img, remoteOptions(ctx)...)
	case TransportOCI:
		return replaceDir(r.Path, func(tmp string) error { return writeLayout(tmp, img, r.Tag) })
	case TransportOCIArchive:
		return writeArchive(r.Path, img, r.Tag)
	}
	return fmt.Errorf("unknown transport %q", r.Transport)
}

func writeLayout(dir string, img v1.Image, tag string) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	var opts []layout.Option
	if tag != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{refNameAnnotation: tag}))
	}
	return p.AppendImage(img, opts...)
}

// replaceDir builds a directory beside dest and moves it into place, so
// a reader never sees a half-written layout.
func replaceDir(dest string, fill func(tmp string) error) error {
	if st, err := os.Lstat(dest); err == nil {
		// Only an earlier image or an empty directory is replaced, never
		// an unrelated directory.
		_, lerr := os.Lstat(filepath.Join(dest, "oci-layout"))
		ents, _ := os.ReadDir(dest)
		if !st.IsDir() || lerr != nil && len(ents) > 0 {
			return fmt.Errorf("%s exists and is not an OCI image layout: refusing to replace it", dest)
		}
	}
	parent := filepath.Dir(dest)
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dest)+".tmp-")
	if err != nil {
		return err
	}
	if err := fill(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	old := ""
	if _, err := os.Lstat(dest); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dest, old); err != nil {
			os.RemoveAll(tmp)
			return err
		}
	}
	if err := os.Rename(tmp, dest); err != nil {
		if old != "" {
			os.Rename(old, dest)
		}
		os.RemoveAll(tmp)
		return err
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}

// writeArchive writes an OCI layout as a tar file (sorted entries, fixed
// times), through a temporary file renamed into place.
func writeArchive(dest string, img v1.Image, tag string) error {
	dir, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := writeLayout(dir, img, tag); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	tw := tar.NewWriter(f)
	var names []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		names = append(names, rel)
		return nil
	})
	sort.Strings(names)
	for _, rel := range names {
		if err != nil {
			break
		}
		err = func() error {
			st, err := os.Lstat(filepath.Join(dir, rel))
			if err != nil {
				return err
			}
			h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: epoch, Mode: 0o644, Format: tar.FormatPAX}
			if st.IsDir() {
				h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
				return tw.WriteHeader(h)
			}
			h.Typeflag, h.Size = tar.TypeReg, st.Size()
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			src, err := os.Open(filepath.Join(dir, rel))
			if err != nil {
				return err
			}
			defer src.Close()
			_, err = io.Copy(tw, src)
			return err
		}()
	}
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), dest)
}

// extractArchive unpacks an oci-archive into dir: only plain files and
// directories with clean relative names, nothing else.
func extractArchive(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", archive, err)
		}
		n := strings.TrimPrefix(h.Name, "./")
		clean := path.Clean(n)
		if n == "" || clean == "." {
			continue
		}
		if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("%s: entry %q leaves the archive", archive, h.Name)
		}
		dst := filepath.Join(dir, filepath.FromSlash(clean))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return fmt.Errorf("%s: entry %q: %w", archive, h.Name, err)
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("%s: entry %q: %w", archive, h.Name, err)
			}
		default:
			return fmt.Errorf("%s: entry %q: type %q is not allowed in an OCI archive", archive, h.Name, h.Typeflag)
		}
	}
}

// open returns the image named by r; cleanup removes any unpacked copy.
func (r ImageRef) open(ctx context.Context, insecure bool, tmpDir string) (v1.Image, func(), error) {
	nop := func() {}
	switch r.Transport {
	case TransportRegistry:
		ref, err := r.registryRef(insecure)
		if err != nil {
			return nil, nil, err
		}
		img, err := remote.Image(ref, remoteOptions(ctx)...)
		return img, nop, err
	case TransportOCI:
		img, err := layoutImage(r.Path, r.Tag)
		return img, nop, err
	case TransportOCIArchive:
		dir, err := os.MkdirTemp(tmpDir, "oci-archive-")
		if err != nil {
			return nil, nil, err
		}
		cleanup := func() { os.RemoveAll(dir) }
		if err := extractArchive(r.Path, dir); err != nil {
			cleanup()
			return nil, nil, err
		}
		img, err := layoutImage(dir, r.Tag)
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		return img, cleanup, nil
	}
	return nil, nil, fmt.Errorf("unknown transport %q", r.Transport)
}

func layoutImage(dir, tag string) (v1.Image, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	var found []v1.Descriptor
	for _, d := range im.Manifests {
		if tag == "" || d.Annotations[refNameAnnotation] == tag {
			found = append(found, d)
		}
	}
	switch {
	case len(found) == 0 && tag != "":
		return nil, fmt.Errorf("OCI layout %s: no image tagged %q", dir, tag)
	case len(found) == 0:
		return nil, fmt.Errorf("OCI layout %s: no image", dir)
	case len(found) > 1:
		return nil, fmt.Errorf("OCI layout %s: %d images, name one with oci:%s:TAG", dir, len(found), dir)
	}
	return idx.Image(found[0].Digest)
}

func goArch() string { return runtime.GOARCH }
