package rpmmd

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/osupdate/os-update/compose/rpmfile"
)

// Downloaded is a package fetched and verified by DownloadAll.
type Downloaded struct {
	File *rpmfile.Package
	// Signer is the OpenPGP key ID that signed the header (gpgcheck), 0
	// when the repository does not check signatures.
	Signer uint64
}

// DownloadAll fetches pkgs into dir (a cache: a file already there with
// the right checksum is not fetched again), at most workers at a time,
// and opens each one, checking that it is the package the metadata named
// and, with the repository's gpgcheck, its header signature (else its
// digests). The first real failure cancels the rest and is returned, not
// the cancellations it caused.
func DownloadAll(ctx context.Context, f *Fetcher, pkgs []*Package, dir string, workers int) ([]Downloaded, error) {
	out := make([]Downloaded, len(pkgs))
	errs := make([]error, len(pkgs))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, max(workers, 1))
	var wg sync.WaitGroup
	for i, p := range pkgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if out[i], errs[i] = download(ctx, f, p, dir); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, ctx.Err()
}

func download(ctx context.Context, f *Fetcher, p *Package, dir string) (Downloaded, error) {
	path, err := f.Download(ctx, p.URL(), p.Checksum, dir, ".rpm")
	if err != nil {
		return Downloaded{}, fmt.Errorf("package %s from %s: %w", p.NEVRA(), p.Repo.Config.ID, err)
	}
	file, err := rpmfile.Open(path)
	if err != nil {
		return Downloaded{}, fmt.Errorf("package %s: %w", p.NEVRA(), err)
	}
	if file.Name() != p.Name || file.Version() != p.EVR.Version || file.Release() != p.EVR.Release {
		return Downloaded{}, fmt.Errorf("package %s: file contains %s", p.NEVRA(), file.NEVRA())
	}
	if p.Repo.Config.GPGCheck {
		kid, err := file.VerifySignature(p.Repo.Keyring)
		if err != nil {
			return Downloaded{}, fmt.Errorf("package %s from %s (gpgcheck): %w", p.NEVRA(), p.Repo.Config.ID, err)
		}
		return Downloaded{File: file, Signer: kid}, nil
	}
	if err := file.VerifyDigest(); err != nil {
		return Downloaded{}, fmt.Errorf("package %s: %w", p.NEVRA(), err)
	}
	return Downloaded{File: file}, nil
}
