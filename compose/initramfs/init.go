package initramfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/osupdate/os-update/bootloader"
	"github.com/osupdate/os-update/sysroot"
	"golang.org/x/sys/unix"
)

// IsInitramfsInit reports whether the running process is the /init of an
// initramfs: pid 1, started as /init.
func IsInitramfsInit(argv0 string) bool { return os.Getpid() == 1 && argv0 == "/init" }

// Init is the initramfs' first program: it loads the listed modules,
// mounts the root= device at /sysroot, prepares the ostree= deployment
// there and switches root to its init (init= on the command line, else
// /sbin/init). It returns only on failure; the caller then stops the
// machine, since pid 1 must not exit.
func Init(ctx context.Context, log io.Writer) error {
	for _, m := range []struct{ src, dst, fstype string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}, {"tmpfs", "/run", "tmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fstype, unix.MS_NOSUID, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	kargs := bootloader.ParseKargs(strings.TrimSpace(string(cmdline)))
	if err := loadModules(log, "/"+ModulesList); err != nil {
		return err
	}
	root, _ := kargs.Get("root")
	if root == "" {
		return fmt.Errorf("no root= on the kernel command line")
	}
	dev, err := waitRoot(ctx, root, 60*time.Second)
	if err != nil {
		return err
	}
	fstype, _ := kargs.Get("rootfstype")
	if fstype == "" {
		fstype = "ext4"
	}
	flags := uintptr(0)
	if _, ro := kargs.Get("ro"); ro {
		if _, rw := kargs.Get("rw"); !rw {
			flags |= unix.MS_RDONLY
		}
	}
	rootflags, _ := kargs.Get("rootflags")
	if err := unix.Mount(dev, "/sysroot", fstype, flags, rootflags); err != nil {
		return fmt.Errorf("mount root %s (%s) on /sysroot: %w", dev, fstype, err)
	}
	fmt.Fprintf(log, "os-update initramfs: mounted %s on /sysroot\n", dev)
	deploy, err := sysroot.PrepareRoot(sysroot.PrepareRootOptions{Sysroot: "/sysroot", Cmdline: string(cmdline), RunDir: "/run"})
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "os-update initramfs: booting %s\n", strings.TrimPrefix(deploy, "/sysroot"))
	// The API filesystems and /run (holding the ostree-booted stamp) go
	// along into the new root, as switch_root does.
	for _, d := range []string{"/dev", "/proc", "/sys", "/run"} {
		if err := unix.Mount(d, "/sysroot"+d, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s into the new root: %w", d, err)
		}
	}
	freeRamfs()
	init, _ := kargs.Get("init")
	if init == "" {
		init = "/sbin/init"
	}
	return sysroot.SwitchRoot("/sysroot", []string{init})
}

// loadModules loads each module of the list in order; one that is loaded
// already is fine.
func loadModules(log io.Writer, list string) error {
	b, err := os.ReadFile(list)
	if err != nil {
		return fmt.Errorf("module list: %w", err)
	}
	for _, p := range strings.Fields(string(b)) {
		f, err := os.Open("/" + p)
		if err != nil {
			return fmt.Errorf("module %s: %w", p, err)
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("load module %s: %w", p, err)
		}
		fmt.Fprintf(log, "os-update initramfs: loaded %s\n", filepath.Base(p))
	}
	return nil
}

// waitRoot waits for the root= device (a /dev path, UUID= or LABEL= of an
// ext2/3/4 file system) to appear and returns its /dev path.
func waitRoot(ctx context.Context, spec string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		if dev := findRoot(spec); dev != "" {
			return dev, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("root device %s did not appear within %s", spec, timeout)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func findRoot(spec string) string {
	if strings.HasPrefix(spec, "/dev/") {
		if _, err := os.Stat(spec); err == nil {
			return spec
		}
		return ""
	}
	key, val, ok := strings.Cut(spec, "=")
	if !ok || (key != "UUID" && key != "LABEL") {
		return ""
	}
	names, _ := os.ReadDir("/sys/class/block")
	for _, n := range names {
		dev := "/dev/" + n.Name()
		uuid, label, ok := ext4Identity(dev)
		if ok && ((key == "UUID" && strings.EqualFold(uuid, val)) || (key == "LABEL" && label == val)) {
			return dev
		}
	}
	return ""
}

// ext4Identity reads the UUID and label of an ext2/3/4 superblock.
func ext4Identity(dev string) (uuid, label string, ok bool) {
	f, err := os.Open(dev)
	if err != nil {
		return "", "", false
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		return "", "", false
	}
	if sb[0x38] != 0x53 || sb[0x39] != 0xEF {
		return "", "", false
	}
	u := sb[0x68:0x78]
	uuid = fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	label = string(bytes.TrimRight(sb[0x78:0x88], "\x00"))
	return uuid, label, true
}

// freeRamfs deletes the initramfs' files (staying on its file system) so
// their memory is returned, as switch_root does.
func freeRamfs() {
	var st unix.Stat_t
	if unix.Stat("/", &st) != nil {
		return
	}
	var walk func(dir string)
	walk = func(dir string) {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			var cs unix.Stat_t
			if unix.Lstat(p, &cs) != nil || cs.Dev != st.Dev {
				continue
			}
			if e.IsDir() {
				walk(p)
			}
			os.Remove(p)
		}
	}
	walk("/")
}

// Main runs Init as pid 1 and, if it fails, says why on the console and
// powers the machine off (pid 1 must not exit: the kernel would panic
// with the message scrolled away).
func Main(log io.Writer) {
	err := Init(context.Background(), log)
	fmt.Fprintf(log, "os-update initramfs: FATAL: %v\n", err)
	unix.Sync()
	time.Sleep(2 * time.Second)
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
