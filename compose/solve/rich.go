package solve

import (
	"fmt"
	"strings"

	"github.com/osupdate/os-update/compose/rpmmd"
	"github.com/osupdate/os-update/compose/rpmver"
)

// expr is a parsed dependency: a leaf (dep) or a boolean operator over
// args, as in rpm's rich dependencies ("(a >= 1 or b)").
type expr struct {
	op   string // "" for a leaf; and, or, if, unless, with, without
	dep  rpmmd.Dep
	args []*expr // for if/unless: [then, cond] or [then, cond, else]
}

func (e *expr) String() string {
	if e.op == "" {
		return e.dep.String()
	}
	parts := make([]string, len(e.args))
	for i, a := range e.args {
		parts[i] = a.String()
	}
	if (e.op == "if" || e.op == "unless") && len(parts) == 3 {
		return "(" + parts[0] + " " + e.op + " " + parts[1] + " else " + parts[2] + ")"
	}
	return "(" + strings.Join(parts, " "+e.op+" ") + ")"
}

// parseDep turns a dependency into an expression; plain deps are leaves.
func parseDep(d rpmmd.Dep) (*expr, error) {
	if !strings.HasPrefix(d.Name, "(") {
		return &expr{dep: d}, nil
	}
	toks := tokenize(d.Name)
	p := &richParser{toks: toks}
	e, err := p.term()
	if err != nil {
		return nil, fmt.Errorf("rich dependency %q: %w", d.Name, err)
	}
	if p.pos != len(toks) {
		return nil, fmt.Errorf("rich dependency %q: trailing %q", d.Name, strings.Join(toks[p.pos:], " "))
	}
	return e, nil
}

func tokenize(s string) []string {
	var out []string
	cur := strings.Builder{}
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for _, r := range s {
		switch {
		case r == '(' || r == ')':
			flush()
			out = append(out, string(r))
		case r == ' ' || r == '\t':
			flush()
		default:
			cur.WriteRune(r)
		}
	}
	flush()
	return out
}

type richParser struct {
	toks []string
	pos  int
}

func (p *richParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

var richOps = map[string]bool{"and": true, "or": true, "if": true, "unless": true, "with": true, "without": true, "else": true}

// term parses "( ... )" or a plain dependency "name [op version]".
func (p *richParser) term() (*expr, error) {
	if p.peek() == "(" {
		p.pos++
		first, err := p.term()
		if err != nil {
			return nil, err
		}
		e := first
		op := ""
		for p.peek() != ")" {
			tok := p.peek()
			if tok == "" {
				return nil, fmt.Errorf("missing )")
			}
			if !richOps[tok] {
				return nil, fmt.Errorf("expected an operator, got %q", tok)
			}
			p.pos++
			next, err := p.term()
			if err != nil {
				return nil, err
			}
			switch {
			case tok == "else":
				if op != "if" && op != "unless" || len(e.args) != 2 {
					return nil, fmt.Errorf("else without if or unless")
				}
				e.args = append(e.args, next)
			case op == "":
				op = tok
				e = &expr{op: tok, args: []*expr{first, next}}
			case tok == op && (op == "and" || op == "or" || op == "with"):
				e.args = append(e.args, next)
			default:
				return nil, fmt.Errorf("mixing %q and %q needs parentheses", op, tok)
			}
		}
		p.pos++
		return e, nil
	}
	name := p.peek()
	if name == "" || name == ")" || richOps[name] {
		return nil, fmt.Errorf("expected a dependency, got %q", name)
	}
	p.pos++
	d := rpmmd.Dep{Name: name}
	if fl, err := rpmver.ParseFlags(p.peek()); err == nil && p.peek() != "" {
		p.pos++
		v := p.peek()
		if v == "" || v == ")" {
			return nil, fmt.Errorf("%s %s: missing version", name, fl)
		}
		p.pos++
		evr, err := rpmver.Parse(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		d.Flags, d.EVR = fl, evr
	}
	return &expr{dep: d}, nil
}
