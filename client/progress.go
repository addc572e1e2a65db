package client

import (
	"io"

	"github.com/osupdate/os-update/internal/progress"
)

// newRenderer returns the progress renderer for w: a bar when w is a
// terminal, plain rate-limited lines otherwise, ANSI styling only on a
// terminal and without NO_COLOR; quiet drops progress (messages stay).
func newRenderer(w io.Writer, quiet bool) *progress.Renderer {
	opts := progress.For(w)
	opts.Quiet = quiet
	return progress.New(w, opts)
}
