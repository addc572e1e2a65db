package delta

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
)

// memChildEnv makes the test binary apply one delta offline and exit, so
// that the parent can read the peak memory of just that apply.
const memChildEnv = "OSUPDATE_DELTA_MEM_CHILD"

func TestMain(m *testing.M) {
	if arg := os.Getenv(memChildEnv); arg != "" {
		repoPath, dir, _ := strings.Cut(arg, "\n")
		r, err := repo.Open(repoPath)
		if err == nil {
			r.SetFsync(false)
			_, _, err = ApplyOffline(context.Background(), r, dir)
		}
		if pf := os.Getenv("OSUPDATE_DELTA_MEMPROF"); pf != "" {
			f, _ := os.Create(pf)
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
		// The peak of this process's own address space: getrusage's
		// maxrss would include the parent's, which the child shared
		// until exec.
		status, _ := os.ReadFile("/proc/self/status")
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "VmHWM:") {
				fmt.Fprintln(os.Stderr, strings.Join(strings.Fields(line), " "))
			}
		}
		if err != nil {
			fmt.Println("ERROR:", err)
		} else {
			fmt.Println("OK")
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// applyInChild applies the delta in dir to the repository at repoPath in
// a child process and returns its output and peak resident memory
// (VmHWM, the high-water mark of its resident set).
func applyInChild(t *testing.T, repoPath, dir string) (string, int64) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), memChildEnv+"="+repoPath+"\n"+dir)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v: %s%s", err, out.String(), stderr.String())
	}
	var kib int64
	if _, err := fmt.Sscanf(stderr.String(), "VmHWM: %d kB", &kib); err != nil || kib == 0 {
		t.Fatalf("child reported no peak memory (%v): %s", err, stderr.String())
	}
	return strings.TrimSpace(out.String()), kib << 10
}

// memBound is a generous ceiling for the peak memory of an apply: the
// test binary itself, two parts of SpoolMemory and buffers stay well
// below it, while holding any of the parts below would exceed it.
const memBound = 200 << 20

// hostileDelta writes a delta from nothing to a small real commit whose
// single part file is partSize bytes: one flag byte (uncompressed) then
// zeros, stored sparse. declared is the size the superblock claims;
// withChecksum computes the part's real checksum (else it is zeros).
func hostileDelta(t *testing.T, dir string, partSize, declared uint64, withChecksum bool) Name {
	t.Helper()
	commit, err := (&object.Commit{Subject: "hostile", Timestamp: 1}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	name := Name{To: object.SumMeta(commit)}
	f, err := os.Create(filepath.Join(dir, "0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(partSize)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var sum [32]byte
	if withChecksum {
		f, err := os.Open(filepath.Join(dir, "0"))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		copy(sum[:], h.Sum(nil))
	}
	obj := object.Name{Type: object.TypeFile, Checksum: object.Checksum{0xaa}}
	sb := &Superblock{Name: name, Commit: commit, Parts: []PartHeader{{
		Checksum: sum, Size: declared, USize: 3 << 30, Objects: []object.Name{obj},
	}}}
	raw, err := sb.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "superblock"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

func newBareRepo(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "dst")
	r, err := repo.Init(p, repo.ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	return p
}

// TestHostilePartSizeMemory: a superblock declaring a 3 GiB part (and a
// 3 GiB part file to go with it) is refused with an error naming the
// delta and the part, without the apply's memory growing with the part.
// Before parts were streamed, this apply read the whole part into memory
// (more than 3 GiB).
func TestHostilePartSizeMemory(t *testing.T) {
	dir := t.TempDir()
	name := hostileDelta(t, dir, 3<<30, 3<<30, false)
	dst := newBareRepo(t)
	out, rss := applyInChild(t, dst, dir)
	t.Logf("peak RSS %d MiB: %s", rss>>20, out)
	if !strings.HasPrefix(out, "ERROR:") {
		t.Fatalf("hostile delta applied: %s", out)
	}
	for _, want := range []string{name.String(), "part 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("error %q does not name %q", out, want)
		}
	}
	if rss > memBound {
		t.Errorf("peak memory %d MiB, want below %d MiB", rss>>20, memBound>>20)
	}
	assertNothingStored(t, dst)
}

// TestHostilePayloadMemory: a part within the size limit, with a valid
// checksum, whose payload (256 MiB of zeros) is garbage: it is refused,
// naming the delta and the part, and the payload is never held in
// memory.
func TestHostilePayloadMemory(t *testing.T) {
	dir := t.TempDir()
	const size = 256 << 20
	name := hostileDelta(t, dir, size, size, true)
	dst := newBareRepo(t)
	out, rss := applyInChild(t, dst, dir)
	t.Logf("peak RSS %d MiB: %s", rss>>20, out)
	if !strings.HasPrefix(out, "ERROR:") {
		t.Fatalf("hostile delta applied: %s", out)
	}
	for _, want := range []string{name.String(), "part 0", "opcode"} {
		if !strings.Contains(out, want) {
			t.Errorf("error %q does not mention %q", out, want)
		}
	}
	if rss > memBound {
		t.Errorf("peak memory %d MiB, want below %d MiB", rss>>20, memBound>>20)
	}
	assertNothingStored(t, dst)
}

func assertNothingStored(t *testing.T, path string) {
	t.Helper()
	r, err := repo.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n := countObjects(t, r); n != 0 {
		t.Errorf("%d objects stored by a failed apply", n)
	}
	ents, _ := os.ReadDir(filepath.Join(path, "tmp"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "delta-part-") {
			t.Errorf("spool file %s left in tmp/", e.Name())
		}
	}
}

// TestLargePartMemory: a legitimate delta whose single part carries a
// 96 MiB incompressible file applies with peak memory far below the
// part's size.
func TestLargePartMemory(t *testing.T) {
	const size = 96 << 20
	tmp := t.TempDir()
	tree := filepath.Join(tmp, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "usr"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(tree, "usr/big.img"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	data = nil
	src, err := repo.Init(filepath.Join(tmp, "src"), repo.ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	src.SetFsync(false)
	ctx := context.Background()
	c, err := src.CommitDir(ctx, tree, repo.CommitOptions{Branch: "os", Subject: "big"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := Generate(ctx, src, object.Checksum{}, c, GenerateOptions{NoFallbacks: true, Compression: CompressNone})
	if err != nil {
		t.Fatal(err)
	}
	sbRaw, err := ReadSuperblock(src, st.Name)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := DecodeSuperblock(sbRaw)
	if err != nil {
		t.Fatal(err)
	}
	var biggest uint64
	for _, ph := range sb.Parts {
		biggest = max(biggest, ph.Size)
	}
	if biggest < size {
		t.Fatalf("largest part is %d bytes, want at least %d", biggest, size)
	}
	dst := newBareRepo(t)
	out, rss := applyInChild(t, dst, filepath.Join(src.Path(), st.Name.Dir()))
	t.Logf("part of %d MiB applied with peak RSS %d MiB: %s", biggest>>20, rss>>20, out)
	if out != "OK" {
		t.Fatalf("apply: %s", out)
	}
	if rss > int64(biggest)/2 {
		t.Errorf("peak memory %d MiB, want below half the part (%d MiB)", rss>>20, biggest>>21)
	}
	r, err := repo.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if ok, err := r.HasObject(c, object.TypeCommit); err != nil || !ok {
		t.Fatalf("commit not stored: %v", err)
	}
	// Every object was checksum-verified when staged; fsck re-reads them.
	rep, err := r.Fsck(ctx, repo.FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 || rep.Objects < 3 {
		t.Fatalf("fsck after apply: %d objects, problems %v", rep.Objects, rep.Problems)
	}
}

// TestXZDictionaryLimit: the built-in xz decoder (used without the xz
// command) refuses a stream asking for a dictionary above 64 MiB before
// allocating it; the stream otherwise decodes.
func TestXZDictionaryLimit(t *testing.T) {
	pw := NewPartWriter()
	pw.Op(OpUnsetReadSource)
	payload, err := pw.Part().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := EncodePart(&buf, payload, true); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	if _, err := DecodePart(good, 0); err != nil {
		t.Fatalf("unmodified part: %v", err)
	}
	d, ok := xzDictSize(good[1:])
	if !ok || d > maxXZDict {
		t.Fatalf("dictionary of the unmodified part: %d, %v", d, ok)
	}
	// Block header: size, flags (no size fields here), filter ID 0x21,
	// property size 1, then the dictionary byte.
	bad := append([]byte(nil), good...)
	hdr := bad[1+12:]
	if hdr[1]&0xc0 != 0 || hdr[2] != 0x21 || hdr[3] != 1 {
		t.Fatalf("unexpected block header % x", hdr[:6])
	}
	hdr[4] = 40 // 4 GiB - 1
	_, err = DecodePart(bad, 0)
	t.Logf("%v", err)
	if err == nil || !strings.Contains(err.Error(), "dictionary") {
		t.Fatalf("4 GiB dictionary: %v", err)
	}
}
