package bootloader

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
)

// TestSyslinuxLabelsAreOneWord is the regression test for titles leaking
// into the kernel command line: syslinux reads the first word after
// DEFAULT or LABEL as the label and passes the rest to the kernel, so
// every label must be one word and DEFAULT must name one of them.
func TestSyslinuxLabelsAreOneWord(t *testing.T) {
	entries := testEntries()
	entries[0].Name = "ostree-2-testos+3.conf" // a counter suffix is not part of the label
	files, err := Syslinux{Dir: "extlinux", File: "extlinux.conf"}.Configs(entries)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(files["extlinux.conf"])
	var def string
	var labels []string
	for _, line := range strings.Split(cfg, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "DEFAULT":
			if len(f) != 2 {
				t.Errorf("DEFAULT with %d words: %q (the extra words become kernel arguments)", len(f)-1, line)
			}
			def = f[1]
		case "LABEL":
			if len(f) != 2 {
				t.Errorf("LABEL with %d words: %q", len(f)-1, line)
			}
			labels = append(labels, f[1])
		}
	}
	if len(labels) != 2 || def != labels[0] || labels[0] == labels[1] {
		t.Fatalf("DEFAULT %q, labels %q:\n%s", def, labels, cfg)
	}
	if labels[0] != "ostree-2-testos" || labels[1] != "ostree-1-testos" {
		t.Fatalf("labels %q, want the entries' names", labels)
	}
	// The titles are still shown, as menu labels.
	if !strings.Contains(cfg, "\tMENU LABEL Test OS 2.0 (ostree:0)\n") {
		t.Fatalf("no menu label with the title:\n%s", cfg)
	}
}

func TestCountedNames(t *testing.T) {
	for _, tc := range []struct {
		name, base  string
		left, done  int
		counted     bool
		plusThree   string
		withoutTrys string
	}{
		{"ostree-1-os.conf", "ostree-1-os.conf", 0, 0, false, "ostree-1-os+3.conf", "ostree-1-os.conf"},
		{"ostree-2-os+3.conf", "ostree-2-os.conf", 3, 0, true, "ostree-2-os+3.conf", "ostree-2-os.conf"},
		{"ostree-2-os+2-1.conf", "ostree-2-os.conf", 2, 1, true, "ostree-2-os+3.conf", "ostree-2-os.conf"},
		{"ostree-2-os+0-3.conf", "ostree-2-os.conf", 0, 3, true, "ostree-2-os+3.conf", "ostree-2-os.conf"},
		// Not counters: left as they are.
		{"a+b.conf", "a+b.conf", 0, 0, false, "a+b+3.conf", "a+b.conf"},
		{"a+1-.conf", "a+1-.conf", 0, 0, false, "a+1-+3.conf", "a+1-.conf"},
		{"a+-1.conf", "a+-1.conf", 0, 0, false, "a+-1+3.conf", "a+-1.conf"},
		{"a+3", "a+3", 0, 0, false, "a+3", "a+3"},
	} {
		base, left, done, counted := ParseCountedName(tc.name)
		if base != tc.base || left != tc.left || done != tc.done || counted != tc.counted {
			t.Errorf("%s: parsed %q %d %d %v", tc.name, base, left, done, counted)
		}
		if strings.HasSuffix(tc.name, ".conf") {
			if got := CountedName(tc.name, 3); got != tc.plusThree {
				t.Errorf("%s +3: %q, want %q", tc.name, got, tc.plusThree)
			}
		}
		if got := CountedName(tc.name, 0); got != tc.withoutTrys {
			t.Errorf("%s without counter: %q", tc.name, got)
		}
	}
}

// TestGrubEnvInteropWithGrubEditenv: what we write, grub-editenv reads,
// and the other way round, escapes included; the block stays 1024 bytes.
func TestGrubEnvInteropWithGrubEditenv(t *testing.T) {
	tool := testutil.RequireTool(t, "grub-editenv")
	dir := t.TempDir()
	ours := filepath.Join(dir, "ours")
	env := &GrubEnv{}
	env.Set("boot_counter", "3")
	env.Set("boot_success", "0")
	env.Set("odd", "a\\b\nc#d=e")
	b, err := env.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != GrubEnvSize {
		t.Fatalf("block is %d bytes", len(b))
	}
	os.WriteFile(ours, b, 0o644)
	if got := testutil.Run(t, tool, ours, "list"); got != "boot_counter=3\nboot_success=0\nodd=a\\b\nc#d=e\n" {
		t.Fatalf("grub-editenv lists %q", got)
	}
	testutil.Run(t, tool, ours, "set", "boot_counter=2", "x=1\\2")
	testutil.Run(t, tool, ours, "unset", "boot_success")
	back, err := ReadGrubEnv(ours)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := back.Get("boot_counter"); v != "2" {
		t.Fatalf("boot_counter %q", v)
	}
	if _, ok := back.Get("boot_success"); ok {
		t.Fatal("boot_success survived unset")
	}
	if v, _ := back.Get("odd"); v != "a\\b\nc#d=e" {
		t.Fatalf("odd %q", v)
	}
	if v, _ := back.Get("x"); v != "1\\2" {
		t.Fatalf("x %q", v)
	}
	// Too much does not fit the fixed block.
	env.Set("big", strings.Repeat("x", GrubEnvSize))
	if _, err := env.Bytes(); err == nil {
		t.Fatal("an oversized environment was rendered")
	}
	if _, err := ParseGrubEnv([]byte("boot_counter=1\n")); err == nil {
		t.Fatal("a block without the signature was accepted")
	}
}

// TestGrub2Counting: arming, marking good and the state, on grubenv.
func TestGrub2Counting(t *testing.T) {
	boot := t.TempDir()
	l := &Loader{BootDir: boot, NoSync: true}
	g := Grub2{Dir: "grub"}
	st, err := g.CountState(l, nil)
	if err != nil || st.Counting {
		t.Fatalf("no grubenv: %+v %v", st, err)
	}
	if err := g.CommitCount(l, CountAction{Tries: 3}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(boot, "grub/grubenv")); err != nil || fi.Size() != GrubEnvSize {
		t.Fatalf("grubenv: %v", err)
	}
	if st, _ := g.CountState(l, nil); !st.Counting || st.Left != 3 || st.Exhausted() {
		t.Fatalf("armed: %+v", st)
	}
	// Keep leaves it; a fallback boot (entry 1) does not end the trial.
	if err := g.CommitCount(l, CountAction{Keep: true}); err != nil {
		t.Fatal(err)
	}
	if changed, err := g.MarkGood(l, 1, nil, 1); err != nil || changed {
		t.Fatalf("mark good of entry 1: %v %v", changed, err)
	}
	if st, _ := g.CountState(l, nil); st.Left != 3 {
		t.Fatalf("after keep and fallback mark: %+v", st)
	}
	if changed, err := g.MarkGood(l, 1, nil, 0); err != nil || !changed {
		t.Fatalf("mark good of the default: %v %v", changed, err)
	}
	env, _ := ReadGrubEnv(filepath.Join(boot, "grub/grubenv"))
	if _, ok := env.Get("boot_counter"); ok {
		t.Fatal("boot_counter left after mark good")
	}
	if v, _ := env.Get("boot_success"); v != "1" {
		t.Fatalf("boot_success %q", v)
	}
	if changed, _ := g.MarkGood(l, 1, nil, 0); changed {
		t.Fatal("marking good twice changed something")
	}
}

// TestGrub2CountingScript runs the grub.cfg's counting through
// grub-script-check and checks its decisions: it decrements every value
// from MaxTries down and falls back at 0.
func TestGrub2CountingScript(t *testing.T) {
	files, err := Grub2{Dir: "grub"}.Configs(testEntries())
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(files["grub.cfg"])
	for _, want := range []string{"load_env boot_counter boot_success", "set fallback=1", "if [ \"${boot_counter}\" = \"0\" ]; then\n\t\tset default=1",
		"elif [ \"${boot_counter}\" = \"1\" ]; then\n\t\tset boot_counter=0\n\t\tsave_env boot_counter",
		"elif [ \"${boot_counter}\" = \"9\" ]; then\n\t\tset boot_counter=8\n"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("grub.cfg lacks %q", want)
		}
	}
	// One entry: nothing to fall back to, no counting.
	one, _ := Grub2{Dir: "grub"}.Configs(testEntries()[:1])
	if strings.Contains(string(one["grub.cfg"]), "boot_counter") {
		t.Fatal("a single entry is counted")
	}
}

func TestSystemdBootCounting(t *testing.T) {
	boot := t.TempDir()
	l := &Loader{BootDir: boot, NoSync: true}
	sb := SystemdBoot{}
	entries := testEntries()
	sb.PrepareCount(entries, CountAction{Tries: 3})
	if entries[0].Name != "ostree-2-testos+3.conf" || entries[1].Name != "ostree-1-testos.conf" {
		t.Fatalf("names %q %q", entries[0].Name, entries[1].Name)
	}
	entries = testEntries()
	sb.PrepareCount(entries, CountAction{Keep: true, KeepName: "ostree-2-testos+0-3.conf"})
	if entries[0].Name != "ostree-2-testos+0-3.conf" {
		t.Fatalf("kept %q", entries[0].Name)
	}
	if st, _ := sb.CountState(l, entries); !st.Exhausted() || st.Done != 3 {
		t.Fatalf("state %+v", st)
	}
	if err := l.Prepare(1, entries, sb); err != nil {
		t.Fatal(err)
	}
	if err := l.Swap(1); err != nil {
		t.Fatal(err)
	}
	read, _ := l.ReadEntries(1)
	if read[0].Name != "ostree-2-testos+0-3.conf" {
		t.Fatalf("read %q", read[0].Name)
	}
	if changed, err := sb.MarkGood(l, 1, read, 0); err != nil || !changed {
		t.Fatalf("mark good: %v %v", changed, err)
	}
	if _, err := os.Stat(filepath.Join(boot, "loader/entries/ostree-2-testos.conf")); err != nil {
		t.Fatal(err)
	}
	if st, _ := sb.CountState(l, read); st.Counting {
		t.Fatalf("after mark good: %+v", st)
	}
}
