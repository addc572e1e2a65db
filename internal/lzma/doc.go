// Package lzma decodes and encodes .xz streams in-process with the
// system's liblzma (XZ Utils' library, the one libostree links) through
// cgo. Without cgo, Available is false and the callers fall back to the
// xz command or the pure-Go codec.
//
// In-process decoding avoids what running the xz command costs per
// static-delta part: a process, and every compressed and decompressed
// byte copied through two pipes.
package lzma
