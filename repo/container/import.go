package container

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/sign"
)

// BlobRefPrefix is where imported layers are recorded, as ostree-ext
// does: one ref per layer digest, pointing at the commit it came with.
const BlobRefPrefix = "ostree/container/blob/"

// maxXattrsSize bounds one .file-xattrs object.
const maxXattrsSize = 1 << 20

// ImportOptions controls Import.
type ImportOptions struct {
	Ref      string    // ref to move to the imported commit (required)
	Insecure bool      // plain HTTP registry; loopback only
	Log      io.Writer // progress lines; nil for none
	// Verifiers, if any, must each find a valid signature of the image's
	// commit in its detached metadata (ostree-remote-image: the remote's
	// keys); checked before anything is committed to the repository.
	Verifiers []sign.Verifier
}

// ImportResult describes an import.
type ImportResult struct {
	Commit         object.Checksum // what Ref points at now
	BaseCommit     object.Checksum // the ostree commit of the image
	ManifestDigest string
	ConfigDigest   string
	Fetched        []string // layer digests downloaded
	Held           []string // layer digests already in the repository
	Derived        int      // non-ostree layers applied on top
}

// BlobRef is the ref recording an imported layer digest.
func BlobRef(digest string) string {
	return BlobRefPrefix + strings.ReplaceAll(digest, ":", "_3A_")
}

// Import pulls the image at imageRef into r: it downloads only the
// ostree layers not recorded under BlobRefPrefix, verifies every layer
// digest, imports the ostree layers losslessly (the image's commit keeps
// its checksum) and applies derived layers as a new commit on top. Refs
// move only after everything verified and the result has a kernel.
func Import(ctx context.Context, r *repo.Repo, imageRef string, opts ImportOptions) (ImportResult, error) {
	var res ImportResult
	if err := repo.ValidateRef(opts.Ref); err != nil {
		return res, fmt.Errorf("import %s: %w", imageRef, err)
	}
	src, err := ParseSourceRef(imageRef)
	if err != nil {
		return res, err
	}
	ref := src.Image
	logf := func(format string, a ...any) {
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, format+"\n", a...)
		}
	}
	fail := func(err error) (ImportResult, error) {
		return res, fmt.Errorf("import %s: %w", imageRef, err)
	}
	img, cleanup, err := ref.open(ctx, opts.Insecure, filepath.Join(r.Path(), "tmp"))
	if err != nil {
		return fail(err)
	}
	defer cleanup()
	mf, err := img.Manifest()
	if err != nil {
		return fail(fmt.Errorf("manifest: %w", err))
	}
	d, err := img.Digest()
	if err != nil {
		return fail(err)
	}
	res.ManifestDigest = d.String()
	cf, err := img.ConfigFile()
	if err != nil {
		return fail(fmt.Errorf("config: %w", err))
	}
	res.ConfigDigest = mf.Config.Digest.String()
	labels := cf.Config.Labels
	final, commitStr := labels[LabelFinalDiff], labels[LabelCommit]
	if final == "" || commitStr == "" {
		return fail(fmt.Errorf("not an ostree container image: labels %s and %s are required", LabelCommit, LabelFinalDiff))
	}
	base, err := object.ParseChecksum(commitStr)
	if err != nil {
		return fail(fmt.Errorf("label %s: %w", LabelCommit, err))
	}
	res.BaseCommit = base
	diffIDs := cf.RootFS.DiffIDs
	if len(diffIDs) != len(mf.Layers) {
		return fail(fmt.Errorf("config lists %d layers, manifest %d", len(diffIDs), len(mf.Layers)))
	}
	commitLayer := -1
	for i, id := range diffIDs {
		if id.String() == final {
			commitLayer = i
			break
		}
	}
	if commitLayer < 0 {
		return fail(fmt.Errorf("label %s=%s names no layer of the image", LabelFinalDiff, final))
	}

	// The ostree layers: one transaction, committed only when the whole
	// commit is present and every layer verified.
	st := &importState{xattrs: map[string][]object.Xattr{}, links: map[object.Checksum]string{}, dirtrees: map[object.Checksum][]byte{}, commits: map[object.Checksum][]byte{}, detached: map[object.Checksum]object.Metadata{}}
	var blobRefs []string
	err = r.Update(ctx, func(tx *repo.Transaction) error {
		for i := 0; i <= commitLayer; i++ {
			desc := mf.Layers[i]
			bref := BlobRef(desc.Digest.String())
			blobRefs = append(blobRefs, bref)
			if _, err := r.ReadRef("", bref); err == nil {
				res.Held = append(res.Held, desc.Digest.String())
				logf("layer %s: already held", desc.Digest)
				continue
			}
			logf("layer %s: fetching (%d bytes)", desc.Digest, desc.Size)
			if err := st.importLayer(ctx, tx, img, desc); err != nil {
				return err
			}
			res.Fetched = append(res.Fetched, desc.Digest.String())
		}
		if err := st.verifyComplete(tx, base); err != nil {
			return err
		}
		return st.verifySignatures(tx.Repo(), base, opts.Verifiers)
	})
	if err != nil {
		return fail(err)
	}

	res.Commit = base
	if commitLayer+1 < len(mf.Layers) {
		derived := mf.Layers[commitLayer+1:]
		res.Derived = len(derived)
		err = r.Update(ctx, func(tx *repo.Transaction) error {
			t, err := newMutableTree(r, base)
			if err != nil {
				return err
			}
			for i, desc := range derived {
				logf("layer %s: fetching derived layer (%d bytes)", desc.Digest, desc.Size)
				if err := applyDerivedLayer(ctx, tx, t, img, desc, i+1); err != nil {
					return err
				}
				res.Fetched = append(res.Fetched, desc.Digest.String())
			}
			root, err := t.write(tx)
			if err != nil {
				return err
			}
			bcm, err := r.LoadCommit(base)
			if err != nil {
				return err
			}
			md := object.Metadata{}
			if v := labels[LabelVersion]; v != "" {
				md.Set(LabelVersion, stringVariant(v))
			}
			md.Set("ostree.manifest-digest", stringVariant(res.ManifestDigest))
			ts := time.Unix(int64(bcm.Timestamp), 0)
			if !cf.Created.IsZero() && cf.Created.Unix() > 0 {
				ts = cf.Created.Time
			}
			res.Commit, err = tx.WriteCommit(root, repo.CommitOptions{
				Parent: base, Subject: "derived from " + ref.String(), Timestamp: ts, Metadata: md,
			})
			return err
		})
		if err != nil {
			return fail(err)
		}
	}
	v, err := r.ViewCommit(res.Commit)
	if err != nil {
		return fail(err)
	}
	if _, err := kernelIn(v); err != nil {
		return fail(fmt.Errorf("image is not bootable: %w", err))
	}
	err = r.Update(ctx, func(tx *repo.Transaction) error {
		for _, b := range blobRefs {
			if err := tx.SetRef("", b, base); err != nil {
				return err
			}
		}
		return tx.SetRef("", opts.Ref, res.Commit)
	})
	if err != nil {
		return fail(err)
	}
	return res, nil
}

// importState carries what one import learned across layers.
type importState struct {
	xattrs   map[string][]object.Xattr  // .file-xattrs by their sha256
	links    map[object.Checksum]string // file object → xattrs sha256
	dirtrees map[object.Checksum][]byte // written in this import, for verifyComplete
	commits  map[object.Checksum][]byte
	detached map[object.Checksum]object.Metadata
}

// verifySignatures checks the commit's signatures, reading the commit and
// its detached metadata from this import or, if already held, the
// repository.
func (st *importState) verifySignatures(r *repo.Repo, commit object.Checksum, vs []sign.Verifier) error {
	if len(vs) == 0 {
		return nil
	}
	data, ok := st.commits[commit]
	md, mdOK := st.detached[commit]
	if !ok {
		var err error
		if data, err = r.ReadMeta(object.TypeCommit, commit); err != nil {
			return err
		}
	}
	if !mdOK {
		var err error
		if md, err = r.ReadCommitMeta(commit); err != nil {
			return err
		}
	}
	if _, err := sign.Verify(data, md, vs...); err != nil {
		return fmt.Errorf("commit %s: signature: %w", commit, err)
	}
	return nil
}

// verifyingReader hashes and counts what passes through it.
type verifyingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	return n, err
}

// openLayer returns the layer's uncompressed tar stream and a check to
// run after the stream was read: it drains the blob and compares its
// size and digest with the manifest's.
func openLayer(img v1.Image, desc v1.Descriptor) (io.Reader, func() error, func(), error) {
	l, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	vr := &verifyingReader{r: rc, h: sha256.New()}
	br := bufio.NewReaderSize(vr, 64<<10)
	magic, _ := br.Peek(4)
	var data io.Reader = br
	closeFn := func() { rc.Close() }
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			rc.Close()
			return nil, nil, nil, fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
		zr.Multistream(false)
		data = zr
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			rc.Close()
			return nil, nil, nil, fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
		data = zr
		closeFn = func() { zr.Close(); rc.Close() }
	}
	verify := func() error {
		if _, err := io.Copy(io.Discard, data); err != nil {
			return fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
		if _, err := io.Copy(io.Discard, br); err != nil {
			return fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
		got := "sha256:" + hex.EncodeToString(vr.h.Sum(nil))
		if desc.Digest.Algorithm != "sha256" {
			return fmt.Errorf("layer %s: unsupported digest algorithm", desc.Digest)
		}
		if got != desc.Digest.String() {
			return fmt.Errorf("layer %s: content hashes to %s: digest mismatch", desc.Digest, got)
		}
		if vr.n != desc.Size {
			return fmt.Errorf("layer %s: %d bytes, manifest says %d", desc.Digest, vr.n, desc.Size)
		}
		return nil
	}
	return data, verify, closeFn, nil
}

// cleanName normalizes a tar entry name and refuses one that could leave
// the tree: absolute after "./" stripping is fine, ".." never is.
func cleanName(n string) (string, error) {
	s := strings.TrimPrefix(n, "./")
	s = strings.TrimLeft(s, "/")
	s = strings.TrimSuffix(s, "/")
	for _, part := range strings.Split(s, "/") {
		if part == ".." {
			return "", fmt.Errorf("entry %q: a path with \"..\" is refused", n)
		}
	}
	c := path.Clean(s)
	if c == "." {
		c = ""
	}
	return c, nil
}

func (st *importState) importLayer(ctx context.Context, tx *repo.Transaction, img v1.Image, desc v1.Descriptor) error {
	return readLayer(ctx, img, desc, func(h *tar.Header, tr io.Reader) error {
		name, err := cleanName(h.Name)
		if err != nil {
			return err
		}
		rest, ok := strings.CutPrefix(name, objectsDir+"/")
		if !ok {
			// Directories, the repository skeleton and the checkout's
			// hardlinks: the objects carry everything.
			return nil
		}
		if err := st.object(tx, rest, h, tr); err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
		return nil
	})
}

// readLayer calls fn for each entry of a layer's tar stream, then checks
// the layer's digest (so nothing fn stored counts until the whole layer
// proved to be the one the manifest names). Errors name the layer.
func readLayer(ctx context.Context, img v1.Image, desc v1.Descriptor, fn func(h *tar.Header, r io.Reader) error) error {
	data, verify, closeFn, err := openLayer(img, desc)
	if err != nil {
		return err
	}
	defer closeFn()
	tr := tar.NewReader(data)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil {
			err = fn(h, tr)
		}
		if err != nil {
			return fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
	}
	return verify()
}

func readAllMax(r io.Reader, size, max int64) ([]byte, error) {
	if size > max {
		return nil, fmt.Errorf("%d bytes, more than the %d allowed", size, max)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// object imports one entry under sysroot/ostree/repo/objects.
func (st *importState) object(tx *repo.Transaction, rest string, h *tar.Header, tr io.Reader) error {
	dir, file, ok := strings.Cut(rest, "/")
	if !ok {
		return nil // an objects/XX directory
	}
	base, ext, ok := strings.Cut(file, ".")
	if len(dir) != 2 || !ok {
		return fmt.Errorf("not an object name")
	}
	sumHex := dir + base
	if ext == "file-xattrs" {
		if h.Typeflag != tar.TypeReg {
			return fmt.Errorf("xattrs object is not a regular file")
		}
		b, err := readAllMax(tr, h.Size, maxXattrsSize)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != sumHex {
			return fmt.Errorf("xattrs object hashes to %x: checksum mismatch", sum)
		}
		xs, err := xattrsFromBytes(b)
		if err != nil {
			return fmt.Errorf("xattrs: %w", err)
		}
		st.xattrs[sumHex] = xs
		return nil
	}
	c, err := object.ParseChecksum(sumHex)
	if err != nil {
		return err
	}
	switch ext {
	case "file-xattrs-link":
		if h.Typeflag != tar.TypeLink {
			return fmt.Errorf("xattrs link is not a hardlink")
		}
		target, err := cleanName(h.Linkname)
		if err != nil {
			return err
		}
		t, ok := strings.CutPrefix(target, objectsDir+"/")
		tdir, tfile, _ := strings.Cut(t, "/")
		tsum, isX := strings.CutSuffix(tfile, ".file-xattrs")
		if !ok || !isX || len(tdir) != 2 {
			return fmt.Errorf("xattrs link points to %q, not an xattrs object", h.Linkname)
		}
		if _, ok := st.xattrs[tdir+tsum]; !ok {
			return fmt.Errorf("xattrs link to %q comes before that object", h.Linkname)
		}
		st.links[c] = tdir + tsum
		return nil
	case "file":
		fh := &object.FileHeader{UID: uint32(h.Uid), GID: uint32(h.Gid), Xattrs: st.xattrs[st.links[c]]}
		perm := uint32(h.Mode) & 0o7777
		var data io.Reader
		var size uint64
		switch h.Typeflag {
		case tar.TypeReg:
			fh.Mode = object.ModeRegular | perm
			data, size = tr, uint64(h.Size)
		case tar.TypeSymlink:
			fh.Mode, fh.SymlinkTarget = object.ModeSymlink|perm, h.Linkname
		default:
			return fmt.Errorf("content object of tar type %q", h.Typeflag)
		}
		if err := fh.Validate(); err != nil {
			return err
		}
		_, err := tx.WriteContent(fh, size, data, &c)
		return err
	case "commit", "dirtree", "dirmeta", "commitmeta":
		if h.Typeflag != tar.TypeReg {
			return fmt.Errorf("metadata object is not a regular file")
		}
		b, err := readAllMax(tr, h.Size, repo.MaxMetadataSize)
		if err != nil {
			return err
		}
		if ext == "commitmeta" {
			m, err := object.UnmarshalMetadata(b)
			if err != nil {
				return err
			}
			st.detached[c] = m
			return tx.WriteCommitMeta(c, m)
		}
		t, _ := object.ParseType(ext)
		if _, err := tx.WriteMeta(t, b, &c); err != nil {
			return err
		}
		switch t {
		case object.TypeDirTree:
			st.dirtrees[c] = b
		case object.TypeCommit:
			st.commits[c] = b
		}
		return nil
	}
	return fmt.Errorf("unknown object type %q", ext)
}

// verifyComplete checks that the commit and every object of its tree are
// in the transaction or the repository. Staged objects are not readable
// through the repository yet: their bytes were kept while importing.
func (st *importState) verifyComplete(tx *repo.Transaction, commit object.Checksum) error {
	has := func(c object.Checksum, t object.Type) error {
		ok, err := tx.Has(object.Name{Checksum: c, Type: t})
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("commit %s: %s.%s is in no layer of the image: %w", commit, c, t, repo.ErrObjectNotFound)
		}
		return nil
	}
	if err := has(commit, object.TypeCommit); err != nil {
		return err
	}
	b, ok := st.commits[commit]
	if !ok {
		var err error
		if b, err = tx.Repo().ReadMeta(object.TypeCommit, commit); err != nil {
			return err
		}
	}
	cm, err := object.UnmarshalCommit(b)
	if err != nil {
		return err
	}
	if err := has(cm.RootMeta, object.TypeDirMeta); err != nil {
		return err
	}
	seen := map[object.Checksum]bool{}
	var walk func(tree object.Checksum) error
	walk = func(tree object.Checksum) error {
		if seen[tree] {
			return nil
		}
		seen[tree] = true
		if err := has(tree, object.TypeDirTree); err != nil {
			return err
		}
		var dt *object.DirTree
		if b, ok := st.dirtrees[tree]; ok {
			if dt, err = object.UnmarshalDirTree(b); err != nil {
				return err
			}
		} else if dt, err = tx.Repo().LoadDirTree(tree); err != nil {
			return err
		}
		for _, f := range dt.Files {
			if err := has(f.Checksum, object.TypeFile); err != nil {
				return err
			}
		}
		for _, d := range dt.Dirs {
			if err := has(d.Meta, object.TypeDirMeta); err != nil {
				return err
			}
			if err := walk(d.Tree); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(cm.RootTree)
}
