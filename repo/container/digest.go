package container

import (
	"context"
	"fmt"
)

// ManifestDigest returns the manifest digest of the image imageRef (any
// form ParseSourceRef takes) without downloading its layers: an update
// check compares it with the deployed one.
func ManifestDigest(ctx context.Context, imageRef string, insecure bool, tmpDir string) (string, error) {
	src, err := ParseSourceRef(imageRef)
	if err != nil {
		return "", err
	}
	img, cleanup, err := src.Image.open(ctx, insecure, tmpDir)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", imageRef, err)
	}
	defer cleanup()
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("image %s: manifest: %w", imageRef, err)
	}
	return d.String(), nil
}

// IsSourceRef reports whether s names an image in the ostree-ext forms
// (ostree-unverified-image:, ostree-unverified-registry:,
// ostree-remote-image:, ostree-remote-registry:) rather than an ostree
// REMOTE:REF.
func IsSourceRef(s string) bool {
	for _, p := range []string{"ostree-unverified-image:", "ostree-unverified-registry:", "ostree-remote-image:", "ostree-remote-registry:", "ostree-image-signed:"} {
		if len(s) >= len(p) && s[:len(p)] == p {
			return true
		}
	}
	return false
}
