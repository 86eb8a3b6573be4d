package api

import (
	"net/http"
	"strconv"

	"github.com/edged-dev/edged/invalid"
	"github.com/edged-dev/edged/kv"
)

// shares is the answer of GET /v1/kv/{ns}/{key}?by=node: the key's
// document and each node's share of it.
type shares struct {
	kv.Doc
	Nodes []kv.Share `json:"nodes"`
}

func (a *API) get(w http.ResponseWriter, r *http.Request) error {
	ns, key := r.PathValue("ns"), r.PathValue("key")
	d, err := a.o.KV.Get(ns, key)
	if err != nil {
		return err
	}
	switch by := r.URL.Query().Get("by"); by {
	case "":
		a.writeJSON(w, http.StatusOK, d)
	case "node":
		nodes, err := a.o.KV.ByNode(ns, key)
		if err != nil {
			return err
		}
		if a.o.Names != nil {
			names := a.o.Names()
			for i := range nodes {
				nodes[i].Name = names[nodes[i].Replica]
			}
		}
		a.writeJSON(w, http.StatusOK, shares{Doc: d, Nodes: nodes})
	default:
		return invalid.Errorf("by", "%q: want node (or nothing)", by)
	}
	return nil
}

func (a *API) post(w http.ResponseWriter, r *http.Request) error {
	b, err := a.body(w, r, maxOpBody, "application/json")
	if err != nil {
		return err
	}
	d, err := a.o.KV.Do(r.Context(), r.PathValue("ns"), r.PathValue("key"), b)
	if err != nil {
		return err
	}
	a.m.ops.WithLabelValues(d.Type).Inc()
	a.writeJSON(w, http.StatusOK, d)
	return nil
}

func (a *API) delete(w http.ResponseWriter, r *http.Request) error {
	if err := a.o.KV.Delete(r.Context(), r.PathValue("ns"), r.PathValue("key")); err != nil {
		return err
	}
	a.m.ops.WithLabelValues("delete").Inc()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listing is the answer of GET /v1/kv/{ns}.
type listing struct {
	Keys []kv.Doc `json:"keys"`
	// Next, when set, is the after= of the next page.
	Next string `json:"next,omitempty"`
}

func (a *API) list(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := intParam(q.Get("limit"), "limit", 100)
	if err != nil {
		return err
	}
	out := listing{Keys: []kv.Doc{}}
	more, err := a.o.KV.List(r.PathValue("ns"), q.Get("prefix"), q.Get("after"), limit, func(d kv.Doc) error {
		out.Keys = append(out.Keys, d)
		return nil
	})
	if err != nil {
		return err
	}
	if more && len(out.Keys) > 0 {
		out.Next = out.Keys[len(out.Keys)-1].Key
	}
	a.writeJSON(w, http.StatusOK, out)
	return nil
}

func intParam(s, name string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, invalid.Errorf(name, "%q is not an integer", s)
	}
	return n, nil
}
