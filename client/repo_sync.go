package client

// repoSyncCommands are the repo subcommands for signing, summaries,
// remotes, serving and pulling.
func repoSyncCommands() map[string]command {
	return map[string]command{}
}
