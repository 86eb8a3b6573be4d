package engine

import (
	"context"
	"fmt"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/store"
)

// Page is a range of a peer's key space received by state transfer (see
// package replication), to join into the store.
type Page struct {
	// After and Last bound the range: the names in (After, Last], or
	// after After when Last is "".
	After, Last string
	// Records are the peer's records in the range, in name order.
	Records []store.Record
	// Ctx is the peer's context when it read them: a local entry in the
	// range that Ctx covers and Records lack was removed there.
	Ctx crdt.Context
	// Keep says which names the peer shares with this node; the others
	// are not touched. Nil: every name.
	Keep func(name string) bool
	// Progress is stored with the page, for a restarted node to resume.
	Progress store.Transfer
	// Done: the last page. The context then takes Progress.Base and the
	// log vector Progress.BaseVector, and the progress is deleted.
	Done bool
}

// Join joins a page of state transfer into the store through the write
// path, durably, with its progress.
func (e *Engine) Join(ctx context.Context, p *Page) error {
	r := &request{page: p}
	if err := e.submit(ctx, r); err != nil {
		return err
	}
	return r.err
}

// ForgetTransfer deletes the stored progress of a state transfer given up
// (see replication.Stats.TransfersAbandoned), so that a restart does not
// resume it.
func (e *Engine) ForgetTransfer(ctx context.Context) error {
	r := &request{forget: true}
	if err := e.submit(ctx, r); err != nil {
		return err
	}
	return r.err
}

// join joins a page into the working state: each field of each name in
// its range, present on either side, joined as a whole state with the
// page's context.
func (w *work) join(p *Page) error {
	keep := p.Keep
	if keep == nil {
		keep = func(string) bool { return true }
	}
	remote := map[string]map[crdt.Type]crdt.Value{}
	var names []string
	for _, r := range p.Records {
		if !keep(r.Name) || r.Name <= p.After || p.Last != "" && r.Name > p.Last {
			return fmt.Errorf("engine: state transfer page (%q, %q] holds %q", p.After, p.Last, r.Name)
		}
		if err := store.ValidateName(r.Name); err != nil {
			return fmt.Errorf("engine: state transfer page: %w", err)
		}
		vs, err := store.DecodeRecord(r.Name, r.Enc)
		if err != nil {
			return fmt.Errorf("engine: state transfer page: %w", err)
		}
		remote[r.Name] = vs
		names = append(names, r.Name)
	}
	local, _, err := w.e.db.Records(p.After, p.Last, 0, keep)
	if err != nil {
		return err
	}
	for _, r := range local {
		if remote[r.Name] == nil {
			names = append(names, r.Name)
		}
	}
	for _, name := range names {
		vs, err := w.fields(name)
		if err != nil {
			return partial(err)
		}
		theirs := remote[name]
		types := map[crdt.Type]bool{}
		for t := range vs {
			types[t] = true
		}
		for t := range theirs {
			types[t] = true
		}
		for t := range types {
			v, err := crdt.JoinValue(vs[t], &w.ctx, theirs[t], &p.Ctx)
			if err != nil {
				return partial(err)
			}
			if v == nil {
				delete(vs, t)
			} else {
				vs[t] = v
			}
		}
		enc, err := store.EncodeRecord(name, vs)
		if err != nil {
			return partial(err)
		}
		w.encoded[name] = enc
	}
	if p.Done {
		w.ctx.Merge(&p.Progress.Base)
		w.logvv.Merge(p.Progress.BaseVector)
		w.transferDone = true
		return nil
	}
	prog := p.Progress
	w.transfer = &prog
	return nil
}
