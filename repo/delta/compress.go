package delta

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
)

// Compression selects how Generate compresses parts. Every choice writes
// the same format (an .xz stream with CRC64 check) except CompressNone.
type Compression int

const (
	// CompressAuto uses the xz command (liblzma) when it is installed,
	// else the built-in encoder.
	CompressAuto Compression = iota
	// CompressBuiltin is the pure-Go encoder (github.com/ulikunitz/xz):
	// fast, but its output is some 5% larger than liblzma's.
	CompressBuiltin
	// CompressXZCommand runs `xz` (liblzma), as libostree links it.
	CompressXZCommand
	// CompressNone stores parts uncompressed.
	CompressNone
)

// ParseCompression parses auto, builtin, xz or none.
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "", "auto":
		return CompressAuto, nil
	case "builtin":
		return CompressBuiltin, nil
	case "xz":
		return CompressXZCommand, nil
	case "none":
		return CompressNone, nil
	}
	return 0, fmt.Errorf("unknown compression %q: want auto, builtin, xz or none", s)
}

// compressor writes a part file for a payload.
type compressor func(ctx context.Context, dst io.Writer, payload []byte) error

func newCompressor(c Compression, extreme bool) (compressor, error) {
	builtin := func(_ context.Context, dst io.Writer, payload []byte) error {
		return EncodePart(dst, payload, true)
	}
	switch c {
	case CompressNone:
		return func(_ context.Context, dst io.Writer, payload []byte) error {
			return EncodePart(dst, payload, false)
		}, nil
	case CompressBuiltin:
		return builtin, nil
	}
	xzPath, err := xzUtils()
	if err != nil {
		if c == CompressXZCommand {
			return nil, fmt.Errorf("compression xz: %w", err)
		}
		return builtin, nil
	}
	return func(ctx context.Context, dst io.Writer, payload []byte) error {
		if _, err := dst.Write([]byte{CompressionXZ}); err != nil {
			return err
		}
		// The dictionary need not exceed the payload: preset 6 has
		// 8 MiB, 7 16 MiB, 8 32 MiB (and decoders allocate that much).
		preset := 6
		switch {
		case len(payload) > 16<<20:
			preset = 8
		case len(payload) > 8<<20:
			preset = 7
		}
		flag := "-" + strconv.Itoa(preset)
		if extreme {
			flag += "e"
		}
		cmd := exec.CommandContext(ctx, xzPath, "--format=xz", "--check=crc64", "--threads=1", "--quiet", "--stdout", flag)
		cmd.Stdin = bytes.NewReader(payload)
		cmd.Stdout = dst
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("xz: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
		return nil
	}, nil
}

// xzUtils finds the xz command of XZ Utils. Another program of that name
// (busybox's xz applet, on small systems) takes none of the options used
// here, so it does not count: the built-in codec is used instead.
func xzUtils() (string, error) {
	p, err := exec.LookPath("xz")
	if err != nil {
		return "", err
	}
	out, err := exec.Command(p, "--version").Output()
	if err != nil || !bytes.HasPrefix(out, []byte("xz (XZ Utils)")) {
		return "", fmt.Errorf("%s is not XZ Utils' xz", p)
	}
	return p, nil
}
