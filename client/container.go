package client

import (
	"context"
	"fmt"
	"strings"

	"github.com/osupdate/os-update/compose"
	"github.com/osupdate/os-update/repo/container"
	"github.com/osupdate/os-update/repo/remote"
)

// repoContainerCommands are the repo subcommands for OCI images.
func repoContainerCommands() []command {
	return []command{
		{use: "container", short: "import OCI images in the ostree container format", long: `Work with OCI images in the ostree container format (ostree-ext): import
an image as a commit of the repository.`, sub: []command{
			{use: "import IMAGE", short: "import an image (oci:, oci-archive:, docker://) as a commit", run: containerImport, long: `Import IMAGE as a commit of --ref: oci:PATH[:TAG], oci-archive:PATH[:TAG]
or docker://HOST/NAME:TAG, optionally prefixed with ostree-unverified-image:
or ostree-remote-image:REMOTE: (then the commit's signature is checked with
REMOTE's keys).`},
		}},
	}
}

func composeEncapsulate(f *flagSet) runFunc {
	open := repoFlag(f)
	maxLayers := f.Int("max-layers", container.DefaultMaxLayers, "at most this many layers (the commit layer included)")
	insecure := f.Bool("insecure", false, "plain HTTP without TLS verification (loopback registries only)")
	byPath := f.Bool("group-by-path", false, "group files into layers by directory even when the commit has an rpm database")
	var labels stringList
	f.Var(&labels, "label", "add a config label K=V (repeatable)")
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 2 {
			return usagef("want REF and DEST")
		}
		opts := container.EncapsulateOptions{MaxLayers: *maxLayers, Insecure: *insecure, Labels: map[string]string{}}
		if *maxLayers < 1 {
			return usagef("--max-layers must be at least 1")
		}
		for _, l := range labels {
			k, v, ok := strings.Cut(l, "=")
			if !ok || k == "" {
				return usagef("--label %q: want KEY=VALUE", l)
			}
			opts.Labels[k] = v
		}
		r, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		if !*byPath {
			commit, err := r.ResolveRev(pos[0])
			if err != nil {
				return err
			}
			owners, err := compose.PackageFiles(ctx, r, commit, nil)
			if err != nil {
				return fmt.Errorf("%w (--group-by-path does without the rpm database)", err)
			}
			if owners != nil {
				opts.PackageOf = func(p string) string { return owners[p] }
			}
		}
		res, err := container.Encapsulate(ctx, r, pos[0], pos[1], opts)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s: commit %s in %d layers, manifest %s\n", pos[1], res.Commit, res.Layers, res.ManifestDigest)
		return nil
	}
}

func containerImport(f *flagSet) runFunc {
	open := repoFlag(f)
	ref := f.String("ref", "", "ref to point at the imported commit (required)")
	insecure := f.Bool("insecure", false, "plain HTTP without TLS verification (loopback registries only)")
	quiet := f.Bool("quiet", false, "print only the commit checksum")
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 1 {
			return usagef("want one IMAGE")
		}
		if *ref == "" {
			return usagef("--ref is required")
		}
		r, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		opts := container.ImportOptions{Ref: *ref, Insecure: *insecure}
		src, err := container.ParseSourceRef(pos[0])
		if err != nil {
			return err
		}
		if src.Remote != "" {
			st := &remote.Store{Repo: r}
			rem, err := st.Get(src.Remote)
			if err != nil {
				return err
			}
			if opts.Verifiers, err = st.Verifiers(rem, false); err != nil {
				return err // names the remote
			}
			if len(opts.Verifiers) == 0 {
				return fmt.Errorf("remote %s verifies no signatures (gpg-verify and sign-verify are off): use ostree-unverified-image: to import without a check", src.Remote)
			}
		}
		if !*quiet {
			opts.Log = e.stdout
		}
		res, err := container.Import(ctx, r, pos[0], opts)
		if err != nil {
			return err
		}
		if *quiet {
			fmt.Fprintln(e.stdout, res.Commit)
			return nil
		}
		fmt.Fprintf(e.stdout, "%s: commit %s (image %s, %d layers fetched, %d already held, %d derived)\n",
			*ref, res.Commit, res.ManifestDigest, len(res.Fetched), len(res.Held), res.Derived)
		return nil
	}
}
