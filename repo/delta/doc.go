// Package delta reads, writes, applies and generates libostree static
// deltas, byte-compatible with ostree 2022.7: `ostree static-delta
// apply-offline` and `ostree pull` accept the deltas Generate writes, and
// Apply accepts the deltas `ostree static-delta generate` writes
// (from-empty and from a commit; whole-object, rollsum and bsdiff
// operations; xz-compressed, uncompressed and inline parts; fallbacks).
//
// # Layout
//
// A delta from commit F to commit T lives in deltas/<b64(F)[:2]>/<b64(F)[2:]>-<b64(T)>/
// (from empty: deltas/<b64(T)[:2]>/<b64(T)[2:]>/), where b64 is libostree's
// modified base64 (ToBase64). The directory holds "superblock" and part
// files "0", "1", …. Summaries and the command line name deltas in hex,
// "F-T" or "T" (Name.String, ParseName). SuperblockPath, PartPath and
// IndexPath give the paths relative to a repository or remote base URL.
//
// # Applying (for pull)
//
// An HTTP pull calls Apply inside its transaction (repo.Update):
//
//	sb, _ := fetch(ctx, delta.SuperblockPath(from, to))          // ≤ MaxSuperblockSize
//	// compare delta.Digest(sb) with the summary's or index's digest
//	stats, err := delta.Apply(ctx, tx, sb, delta.ApplyOptions{
//		FetchPart: func(ctx context.Context, i int) (io.ReadCloser, error) {
//			return fetchStream(ctx, delta.PartPath(from, to, i))
//		},
//		FetchFallback: func(ctx context.Context, n object.Name) error {
//			// fetch objects/XX/….filez and tx.WriteContent(…, &n.Checksum)
//		},
//		VerifyCommit: func(ctx context.Context, s *delta.Superblock) error {
//			// s.Commit and s.CommitMeta: check signatures before anything is written
//		},
//	})
//	// on error: return it from the Update function (nothing becomes visible) and fall back to the object walk
//
// Apply decodes and validates the superblock (the embedded commit must
// hash to the target), calls VerifyCommit, fetches missing fallbacks,
// then, for each part whose objects are not all present already
// (tx.Has), reads it through FetchPart (at most its declared size; size
// and SHA-256 checked; inline parts come from the superblock), decodes it
// and executes its operations. Every object is written through the
// transaction, so its checksum is verified before it is staged; source
// objects named by 'r' operations are read from tx.Repo(). The detached
// metadata and the commit are written last. Errors name the delta and
// the part ("delta F-T: part 2: op 'w' at offset 91: …") and wrap
// ErrMalformed when the delta's bytes are at fault.
//
// ApplyOffline does the same from a directory in one transaction of its
// own.
//
// # Generating
//
// Generate(ctx, repo, from, to, opts) writes a delta into the repository:
// metadata objects first, then content. Objects the source commit has are
// not carried. A changed file with a plausible source (same path; same
// name elsewhere with a size within 30%; same directory and a name equal
// up to digits, for versioned libraries) is encoded as rollsum copies
// (content-defined chunks matched and extended byte by byte), as a bsdiff
// patch, or whole, whichever a fast compressed-size estimate says is
// smallest. New files above MinFallbackSize with no source become
// fallbacks. Parts are cut at MaxChunkSize and xz-compressed. The target
// commit and its detached metadata (signatures) ride in the superblock.
// Everything is staged under tmp/ and renamed into deltas/ at once.
//
// Memory: the source's file index (paths and checksums), one part's
// payload (≤ MaxChunkSize plus one object), and for a diffed pair the two
// files plus ~16 bytes per byte of the old file (bsdiff's suffix array),
// bounded by MaxBsdiffSize.
package delta
