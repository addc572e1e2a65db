package client

// repoDeltaCommands are the repo subcommands for static deltas.
func repoDeltaCommands() map[string]command {
	return map[string]command{}
}
