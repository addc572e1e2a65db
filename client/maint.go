package client

import (
	"context"
	"fmt"

	"github.com/osupdate/os-update/internal/clihelp"
	"github.com/spf13/cobra"
)

// maintenanceCommands generate what packagers install next to the binary:
// shell completion scripts and man pages.
func maintenanceCommands() []command {
	return []command{
		{use: "completion bash|zsh|fish", short: "print a shell completion script", run: runCompletion, validArgs: []string{"bash", "zsh", "fish"}, long: `Print the completion script for a shell; it completes commands, options and
some of their values. Install it where the shell loads completions from:

  os-update completion bash > /usr/share/bash-completion/completions/os-update
  os-update completion zsh  > /usr/share/zsh/site-functions/_os-update
  os-update completion fish > /usr/share/fish/vendor_completions.d/os-update.fish

Or try it in the running shell: source <(os-update completion bash).`},
		{use: "man DIR", short: "write the man pages of every command into DIR", hidden: true, run: runMan, long: `Write one man page (section 1) per command into DIR, for packaging:
os-update.1, os-update-upgrade.1, os-update-repo-pull.1, ...`},
	}
}

// rootOf is the command tree a maintenance command describes.
func rootOf(ctx context.Context) *cobra.Command {
	cmd, _ := ctx.Value(cmdKey{}).(*cobra.Command)
	return cmd.Root()
}

// cmdKey stores the running cobra command in the context, for the
// commands that describe the tree itself.
type cmdKey struct{}

func runCompletion(f *flagSet) runFunc {
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 1 {
			return usagef("name one shell: bash, zsh or fish")
		}
		root := rootOf(ctx)
		switch args[0] {
		case "bash":
			return root.GenBashCompletionV2(e.stdout, true)
		case "zsh":
			return root.GenZshCompletion(e.stdout)
		case "fish":
			return root.GenFishCompletion(e.stdout, true)
		}
		return usagef("unsupported shell %q: want bash, zsh or fish", args[0])
	}
}

func runMan(f *flagSet) runFunc {
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 1 {
			return usagef("name the directory to write the man pages into")
		}
		if err := clihelp.WriteManPages(rootOf(ctx), args[0], "1"); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "wrote man pages into %s\n", args[0])
		return nil
	}
}
