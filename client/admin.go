package client

// sysrootCommands are the top-level commands that work on a sysroot
// offline: admin, finalize, prepare-root.
func sysrootCommands() map[string]command {
	return map[string]command{}
}
