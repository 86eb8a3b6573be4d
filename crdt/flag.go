package crdt

// EWFlag is an enable-wins flag: a boolean where a concurrent enable and
// disable leave it enabled. Its store is the set of enabling dots; disable
// removes the dots it has observed.
type EWFlag struct{ dots DotSet }

var _ Value = (*EWFlag)(nil)

// Type returns TypeEWFlag.
func (*EWFlag) Type() Type { return TypeEWFlag }

// IsBottom reports whether the flag holds no dot (it is disabled).
func (f *EWFlag) IsBottom() bool { return f.dots.IsBottom() }

// Enabled reports whether the flag is enabled.
func (f *EWFlag) Enabled() bool { return len(f.dots) > 0 }

// Enable returns the delta that enables the flag.
func (f *EWFlag) Enable(g *DotGen) Causal {
	ctx := Dots(f)
	d := g.Next()
	ctx.Add(d)
	return delta(&EWFlag{dots: DotSet{d}}, ctx)
}

// Disable returns the delta that disables the flag (as far as observed).
func (f *EWFlag) Disable() Causal { return delta(&EWFlag{}, Dots(f)) }

func (f *EWFlag) merge(o Value, c, oc *Context, m mode) Value {
	f.dots = f.dots.merge(o.(*EWFlag).dots, c, oc, m)
	return f
}
func (*EWFlag) empty() Value           { return new(EWFlag) }
func (f *EWFlag) eachDot(fn func(Dot)) { f.dots.eachDot(fn) }
