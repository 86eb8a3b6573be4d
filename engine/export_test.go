package engine

// Queued returns the number of requests waiting for Run to take them.
func (e *Engine) Queued() int { return len(e.reqs) }
