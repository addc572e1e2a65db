package client

import (
	"io"

	"github.com/osupdate/os-update/internal/progress"
)

// newRenderer returns the progress renderer for w: a bar when w is a
// terminal, plain rate-limited lines otherwise, ANSI styling only on a
// terminal and without NO_COLOR.
func newRenderer(e *env, w io.Writer) *progress.Renderer {
	return progress.New(w, progress.For(w))
}
