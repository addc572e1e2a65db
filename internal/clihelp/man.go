package clihelp

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// WriteManPages writes one roff man page per available command of root
// (hidden ones excluded) into dir, in the given section: os-update.1,
// os-update-repo-pull.1, ...
func WriteManPages(root *cobra.Command, dir, section string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	var walk func(c *cobra.Command) error
	walk = func(c *cobra.Command) error {
		name := strings.ReplaceAll(c.CommandPath(), " ", "-")
		path := filepath.Join(dir, name+"."+section)
		if err := os.WriteFile(path, []byte(ManPage(c, section)), 0o644); err != nil {
			return fmt.Errorf("man page: %w", err)
		}
		for _, s := range c.Commands() {
			if s.IsAvailableCommand() {
				if err := walk(s); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(root)
}

// roff escapes text for a roff line: backslashes, hyphens (so that man
// does not turn options into hyphenation points) and control characters
// at the start of a line.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// ManPage renders one command's man page.
func ManPage(c *cobra.Command, section string) string {
	var b strings.Builder
	name := strings.ReplaceAll(c.CommandPath(), " ", "-")
	root := c.Root()
	fmt.Fprintf(&b, ".TH %q %q \"\" %q %q\n", strings.ToUpper(name), section, root.Name()+" "+strings.SplitN(root.Version, "\n", 2)[0], root.Name()+" manual")
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", roff(name), roff(c.Short))
	b.WriteString(".SH SYNOPSIS\n")
	syn := strings.TrimPrefix(synopsis(c), "Usage: ")
	for _, l := range strings.Split(strings.TrimSpace(syn), "\n") {
		b.WriteString(roff(strings.TrimSpace(l)) + "\n")
	}
	b.WriteString(".SH DESCRIPTION\n")
	long := strings.TrimSpace(c.Long)
	if long == "" {
		long = c.Short
	}
	for i, para := range strings.Split(long, "\n\n") {
		if i > 0 {
			b.WriteString(".PP\n")
		}
		for _, l := range strings.Split(para, "\n") {
			b.WriteString(roff(l) + "\n")
		}
	}
	if hasSubcommands(c) {
		b.WriteString(".SH COMMANDS\n")
		for _, s := range c.Commands() {
			if s.IsAvailableCommand() {
				fmt.Fprintf(&b, ".TP\n\\fB%s\\fR\n%s\n", roff(s.Name()), roff(s.Short))
			}
		}
	}
	if flags := visibleFlags(c); len(flags) > 0 {
		b.WriteString(".SH OPTIONS\n")
		for _, f := range flags {
			spec := `\fB\-\-` + roff(f.Name) + `\fR`
			if f.Shorthand != "" {
				spec = `\fB\-` + roff(f.Shorthand) + `\fR, ` + spec
			}
			if v := valueName(f); v != "" {
				spec += ` \fI` + roff(v) + `\fR`
			}
			usage := f.Usage
			if d := defaultText(f); d != "" && !strings.Contains(usage, "default") {
				usage += " (default " + d + ")"
			}
			fmt.Fprintf(&b, ".TP\n%s\n%s\n", spec, roff(strings.ReplaceAll(usage, "`", "")))
		}
	}
	var see []string
	if c.HasParent() {
		see = append(see, strings.ReplaceAll(c.Parent().CommandPath(), " ", "-"))
	}
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			see = append(see, strings.ReplaceAll(s.CommandPath(), " ", "-"))
		}
	}
	if len(see) > 0 {
		b.WriteString(".SH SEE ALSO\n")
		for i, s := range see {
			sep := ","
			if i == len(see)-1 {
				sep = ""
			}
			fmt.Fprintf(&b, "\\fB%s\\fR(%s)%s\n", roff(s), section, sep)
		}
	}
	return b.String()
}
