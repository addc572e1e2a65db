package container

import (
	"fmt"
	"strings"
)

// SourceRef is an image reference in the ostree-ext form that says how
// the commit inside is verified:
//
//	ostree-unverified-image:TRANSPORT:REF    no signature check
//	ostree-unverified-registry:HOST/NAME:TAG the same as ostree-unverified-image:docker://...
//	ostree-remote-image:REMOTE:TRANSPORT:REF the commit must be signed with REMOTE's keys
//	ostree-remote-registry:REMOTE:HOST/NAME:TAG
//
// A bare TRANSPORT:REF (oci:, oci-archive:, docker://) is unverified.
type SourceRef struct {
	Image  ImageRef
	Remote string // "" for unverified
}

func (s SourceRef) String() string {
	if s.Remote != "" {
		return "ostree-remote-image:" + s.Remote + ":" + s.Image.String()
	}
	return "ostree-unverified-image:" + s.Image.String()
}

// ParseSourceRef parses the forms above.
func ParseSourceRef(s string) (SourceRef, error) {
	var out SourceRef
	rest := s
	registry := false
	switch {
	case strings.HasPrefix(s, "ostree-unverified-image:"):
		rest = strings.TrimPrefix(s, "ostree-unverified-image:")
	case strings.HasPrefix(s, "ostree-unverified-registry:"):
		rest, registry = strings.TrimPrefix(s, "ostree-unverified-registry:"), true
	case strings.HasPrefix(s, "ostree-remote-image:"), strings.HasPrefix(s, "ostree-remote-registry:"):
		registry = strings.HasPrefix(s, "ostree-remote-registry:")
		_, after, _ := strings.Cut(s, ":")
		remote, r, ok := strings.Cut(after, ":")
		if !ok || remote == "" {
			return out, fmt.Errorf("image reference %q: want ostree-remote-image:REMOTE:TRANSPORT:REF", s)
		}
		out.Remote, rest = remote, r
	case strings.HasPrefix(s, "ostree-image-signed:"):
		return out, fmt.Errorf("image reference %q: container signature policies (ostree-image-signed) are not supported; use ostree-remote-image:REMOTE:... (commit signatures) or ostree-unverified-image:", s)
	}
	if registry {
		rest = "docker://" + rest
	}
	img, err := ParseImageRef(rest)
	if err != nil {
		return out, err
	}
	out.Image = img
	return out, nil
}
