// Package clihelp renders the help of the os-update commands (os-update,
// os-updated) and sets up their common options: --help and --version.
package clihelp

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Install makes root (and its subcommands) render help with Write, and
// gives it --help and, with root.Version set, --version.
func Install(root *cobra.Command) {
	root.SetHelpFunc(func(cmd *cobra.Command, _ []string) { Write(cmd.OutOrStdout(), cmd) })
	root.SetUsageFunc(func(cmd *cobra.Command) error { Write(cmd.OutOrStderr(), cmd); return nil })
	root.PersistentFlags().BoolP("help", "h", false, "show this help and exit")
	if root.Version != "" {
		root.Flags().BoolP("version", "v", false, "print the version, the commit and the Go release, and exit")
		root.SetVersionTemplate(root.Name() + " {{.Version}}\n")
	}
}

// The help is rendered here rather than by cobra's templates: the synopsis
// lists every option, option values get readable names, and long lines
// are wrapped to the terminal convention of 80 columns.
const helpWidth = 80

// valueNames name the value of options whose type says too little.
var valueNames = map[string]string{
	"repo": "DIR", "sysroot": "DIR", "cache": "DIR", "gpg-homedir": "DIR", "remotes-d": "DIR", "run-dir": "DIR",
	"bus-address": "ADDRESS", "addr": "HOST:PORT", "timeout": "DURATION", "state": "FILE",
	"automatic-update-policy": "POLICY", "reboot-command": "COMMAND",
	"gpg-key": "FILE", "ed25519-key": "FILE", "sign-key": "FILE", "lockfile": "FILE", "write-lockfile": "FILE",
	"json-report": "FILE", "output": "FILE", "cmdline-file": "FILE", "gpg-import": "FILE", "keyring": "FILE|DIR",
	"ed25519-pubkey": "KEY|FILE", "gpg-sign": "KEYID", "branch": "REF", "ref": "REF", "from": "REV", "to": "REV",
	"parent": "REV", "os": "OSNAME", "karg": "ARG", "append": "K=V", "delete": "K[=V]", "replace": "K=V|K=OLD=NEW",
	"set": "K=V", "label": "K=V", "remote": "NAME", "remote-url": "URL", "size": "SIZE", "format": "FORMAT",
	"bootloader": "NAME", "version": "VERSION", "subject": "TEXT", "body": "TEXT", "cmdline": "TEXT",
	"subpath": "PATH", "tree": "dir=PATH", "timestamp": "TIME", "mode": "MODE", "depth": "N",
	"keep-younger-than": "DATE", "create": "NEW", "source-date-epoch": "SECONDS", "kargs": "ARGS",
	"karg-append": "ARG", "add-metadata-string": "K=V", "add-metadata": "K=V", "print-metadata-key": "KEY",
	"print-detached-metadata-key": "KEY", "min-fallback-size": "MB", "max-chunk-size": "MB",
	"max-bsdiff-size": "MB", "compression": "ALGO", "sign-type": "TYPE", "sign-verify": "TYPE=KEY",
	"initramfs-module": "NAME", "origin-refspec": "REMOTE:REF", "delete-commit": "REV",
}

// valueName is what an option's value is called in the help.
func valueName(f *pflag.Flag) string {
	if f.Value.Type() == "bool" {
		return ""
	}
	if name, _ := pflag.UnquoteUsage(f); strings.Contains(f.Usage, "`") {
		return name
	}
	if n, ok := valueNames[f.Name]; ok {
		return n
	}
	switch f.Value.Type() {
	case "int", "uint", "int64", "uint64":
		return "N"
	case "duration":
		return "DURATION"
	}
	return "VALUE"
}

// optionSpec is "-n, --limit N" or "--check".
func optionSpec(f *pflag.Flag) string {
	s := "--" + f.Name
	if v := valueName(f); v != "" {
		s += " " + v
	}
	if f.Shorthand != "" {
		s = "-" + f.Shorthand + ", " + s
	}
	return s
}

// visibleFlags are the command's options (its own and inherited), sorted.
func visibleFlags(cmd *cobra.Command) []*pflag.Flag {
	var out []*pflag.Flag
	seen := map[string]bool{}
	add := func(f *pflag.Flag) {
		if !f.Hidden && !seen[f.Name] {
			seen[f.Name] = true
			out = append(out, f)
		}
	}
	cmd.LocalFlags().VisitAll(add)
	cmd.InheritedFlags().VisitAll(add)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// synopsis is the usage line: the command path, every option and the
// arguments, wrapped with a hanging indent.
func synopsis(cmd *cobra.Command) string {
	words := strings.Fields(cmd.CommandPath())
	for _, f := range visibleFlags(cmd) {
		if f.Name == "help" || f.Name == "version" {
			continue
		}
		spec := "--" + f.Name
		if v := valueName(f); v != "" {
			spec += " " + v
		}
		if f.Value.Type() == "stringArray" {
			spec += "]..."
		} else {
			spec += "]"
		}
		words = append(words, "["+spec)
	}
	if hasSubcommands(cmd) {
		words = append(words, "COMMAND")
	} else if _, args, ok := strings.Cut(cmd.Use, " "); ok {
		words = append(words, args)
	}
	return wrap("Usage: ", "         ", strings.Join(words, "\x00"))
}

// wrap joins NUL-separated words into lines of at most helpWidth columns.
func wrap(first, indent, text string) string {
	var b strings.Builder
	line := first
	empty := true
	for _, w := range strings.Split(text, "\x00") {
		if !empty && len(line)+1+len(w) > helpWidth {
			b.WriteString(line + "\n")
			line, empty = indent, true
		}
		if !empty {
			line += " "
		}
		line += w
		empty = false
	}
	b.WriteString(line + "\n")
	return b.String()
}

func hasSubcommands(cmd *cobra.Command) bool {
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			return true
		}
	}
	return false
}

// Write renders a command's help.
func Write(w io.Writer, cmd *cobra.Command) {
	var b strings.Builder
	b.WriteString(synopsis(cmd))
	b.WriteString("\n")
	long := cmd.Long
	if long == "" {
		long = cmd.Short
	}
	b.WriteString(strings.TrimSpace(long) + "\n")
	if hasSubcommands(cmd) {
		writeCommands(&b, cmd)
	}
	flags := visibleFlags(cmd)
	if len(flags) > 0 {
		b.WriteString("\nOptions:\n")
		specs := make([]string, len(flags))
		width := 0
		for i, f := range flags {
			specs[i] = optionSpec(f)
			if f.Shorthand == "" {
				specs[i] = "    " + specs[i]
			}
			width = max(width, len(specs[i]))
		}
		width = min(width, 32)
		for i, f := range flags {
			usage := f.Usage
			if strings.Contains(usage, "`") {
				_, usage = pflag.UnquoteUsage(f)
			}
			if d := defaultText(f); d != "" && !strings.Contains(usage, "default") {
				usage += " (default " + d + ")"
			}
			indent := strings.Repeat(" ", width+4)
			prefix := fmt.Sprintf("  %-*s  ", width, specs[i])
			if len(specs[i]) > width {
				b.WriteString("  " + specs[i] + "\n")
				prefix = indent
			}
			b.WriteString(wrap(prefix, indent, strings.Join(strings.Fields(usage), "\x00")))
		}
	}
	if hasSubcommands(cmd) {
		fmt.Fprintf(&b, "\nRun '%s COMMAND --help' for a command's options.\n", cmd.CommandPath())
	}
	io.WriteString(w, b.String())
}

// defaultText is an option's default worth showing, or "".
func defaultText(f *pflag.Flag) string {
	switch f.DefValue {
	case "", "false", "[]", "0s":
		return ""
	}
	if f.Value.Type() == "string" {
		return fmt.Sprintf("%q", f.DefValue)
	}
	return f.DefValue
}

// writeCommands lists subcommands, by group for the top level.
func writeCommands(b *strings.Builder, cmd *cobra.Command) {
	width := 0
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			width = max(width, len(c.Name()))
		}
	}
	section := func(title string, keep func(*cobra.Command) bool) {
		first := true
		for _, c := range cmd.Commands() {
			if !c.IsAvailableCommand() || !keep(c) {
				continue
			}
			if first {
				b.WriteString("\n" + title + "\n")
				first = false
			}
			fmt.Fprintf(b, "  %-*s  %s\n", width, c.Name(), c.Short)
		}
	}
	if len(cmd.Groups()) == 0 {
		section("Commands:", func(*cobra.Command) bool { return true })
		return
	}
	for _, g := range cmd.Groups() {
		section(g.Title, func(c *cobra.Command) bool { return c.GroupID == g.ID })
	}
	section("Other commands:", func(c *cobra.Command) bool { return c.GroupID == "" })
}
