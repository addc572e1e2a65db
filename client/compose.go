package client

// composeCommands are the top-level commands that build trees: compose.
func composeCommands() map[string]command {
	return map[string]command{}
}
