package initramfs

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

func deviceOf(fi os.FileInfo) [2]uint32 {
	st := fi.Sys().(*syscall.Stat_t)
	return [2]uint32{unix.Major(st.Rdev), unix.Minor(st.Rdev)}
}
