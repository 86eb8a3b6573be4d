// Command storefill fills a data directory with distinct keys through the
// engine, with the production settings (low-memory profile, fsync
// durability), and checks the store's resource targets: peak RSS, disk
// bytes per logical byte after the delta log is collected, and reopen time.
//
//	go run ./scripts/storefill -keys 1000000 [-dir DIR] [-memprofile FILE]
//
// With -memprofile, FILE gets a heap profile at the end of the write phase
// and FILE.peak one taken when RSS reached its highest sampled value.
//
// It writes -keys LWW registers ("sensor/%08d", a 24-byte value) from
// -writers concurrent writers, then acknowledges the whole log with a
// watermark, collects it, closes, measures the directory, and times a
// reopen plus one read. It exits 1 if peak RSS (VmHWM) is over -max-rss-mib
// or the reopen takes longer than -max-reopen.
//
// The Go runtime runs with its defaults (or the GOGC and GOMEMLIMIT
// environment variables) unless -gogc or -memlimit-mib is given; the
// settings in effect are printed.
//
// To measure it the way a device holds the service to a memory limit, run
// it under scripts/memcg.sh (root), with a Go limit below the cgroup's:
//
//	go build -o /tmp/storefill ./scripts/storefill
//	sudo scripts/memcg.sh 128 /tmp/storefill -keys 1000000 -memlimit-mib 80
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "storefill:", err)
		os.Exit(1)
	}
}

type config struct {
	keys       int
	dir        string
	writers    int
	valueBytes int
	memprofile string
	gogc       int
	memlimit   int64
	maxRSS     int64
	maxReopen  time.Duration
	sample     time.Duration
}

func parse(args []string, stderr io.Writer) (config, error) {
	var c config
	fl := flag.NewFlagSet("storefill", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.IntVar(&c.keys, "keys", 1_000_000, "distinct keys to write")
	fl.StringVar(&c.dir, "dir", "", "data directory, empty or absent (default: a temporary directory, removed at exit)")
	fl.IntVar(&c.writers, "writers", 64, "concurrent writers")
	fl.IntVar(&c.valueBytes, "value", 24, "bytes of each value")
	fl.StringVar(&c.memprofile, "memprofile", "", "write heap profiles to this file (end of the write phase) and to this file.peak (at the highest RSS)")
	fl.IntVar(&c.gogc, "gogc", 0, "set GOGC (0: leave the runtime's setting)")
	fl.Int64Var(&c.memlimit, "memlimit-mib", 0, "set the Go memory limit in MiB (0: leave the runtime's setting)")
	fl.Int64Var(&c.maxRSS, "max-rss-mib", 128, "fail if peak RSS (VmHWM) exceeds this many MiB")
	fl.DurationVar(&c.maxReopen, "max-reopen", 2*time.Second, "fail if reopening (Open plus one Get) takes longer")
	fl.DurationVar(&c.sample, "sample", 50*time.Millisecond, "RSS sampling interval")
	if err := fl.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fl.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments %q", fl.Args())
	case c.keys <= 0:
		return c, fmt.Errorf("-keys must be positive")
	case c.writers <= 0:
		return c, fmt.Errorf("-writers must be positive")
	case c.valueBytes < 16:
		return c, fmt.Errorf("-value must be at least 16 bytes")
	}
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parse(args, stderr)
	if err != nil {
		return err
	}
	if c.gogc != 0 {
		debug.SetGCPercent(c.gogc)
	}
	if c.memlimit > 0 {
		debug.SetMemoryLimit(c.memlimit << 20)
	}
	if c.dir == "" {
		if c.dir, err = os.MkdirTemp("", "storefill-"); err != nil {
			return err
		}
		defer os.RemoveAll(c.dir)
	} else if ents, err := os.ReadDir(c.dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("%s is not empty; storefill measures a fresh directory", c.dir)
	}
	gogc := debug.SetGCPercent(-1)
	debug.SetGCPercent(gogc)
	memlimit := "none"
	if l := debug.SetMemoryLimit(-1); l != 1<<63-1 {
		memlimit = fmt.Sprintf("%d MiB", l>>20)
	}
	fmt.Fprintf(stdout, "storefill: %d keys, %d writers, %d-byte values, profile %s, durability %s\n",
		c.keys, c.writers, c.valueBytes, store.LowMemory, store.Fsync)
	fmt.Fprintf(stdout, "runtime: %s, GOMAXPROCS=%d, GOGC=%d, memory limit %s\n",
		runtime.Version(), runtime.GOMAXPROCS(0), gogc, memlimit)
	fmt.Fprintf(stdout, "dir: %s\n", c.dir)

	s := newSampler(c.sample, c.memprofile)
	defer s.stop()
	opts := store.Options{Dir: c.dir, Profile: store.LowMemory, Durability: store.Fsync}

	// Write.
	s.setPhase("write")
	db, err := store.Open(opts)
	if err != nil {
		return err
	}
	defer db.Close() // after an error; the normal path closes it below
	e := engine.New(db, 1, engine.Config{})
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Run(ectx) }()
	stopEngine := func() error {
		cancel()
		return <-done
	}

	start := time.Now()
	logical, err := fill(ctx, e, c, stdout, s)
	if err != nil {
		stopEngine()
		return err
	}
	elapsed := time.Since(start)
	fmt.Fprintf(stdout, "write: %d keys in %v: %.0f ops/s\n", c.keys, elapsed.Round(time.Millisecond), float64(c.keys)/elapsed.Seconds())
	fmt.Fprintf(stdout, "write: peak RSS so far %.1f MiB (VmHWM); data dir %s\n", mib(procStatus()["VmHWM"]), size(store.DiskUsage(c.dir)))
	if c.memprofile != "" {
		if err := writeHeapProfile(c.memprofile, true); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "heap profile: %s (inspect: go tool pprof -sample_index=inuse_space %s)\n", c.memprofile, c.memprofile)
	}

	// Acknowledge everything and collect the delta log.
	s.setPhase("gc")
	ctxNow := db.Context()
	if err := db.SetWatermark("storefill", ctxNow.VersionVector()); err != nil {
		return err
	}
	t := time.Now()
	n, err := db.CollectGarbage()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "gc: collected %d log entries in %v\n", n, time.Since(t).Round(time.Millisecond))
	s.setPhase("close")
	if err := stopEngine(); err != nil {
		return err
	}
	t = time.Now()
	if err := db.Close(); err != nil {
		return err
	}
	after := store.DiskUsage(c.dir)
	fmt.Fprintf(stdout, "close: %v; data dir after gc %s; logical %s (names + values); %.2f bytes on disk per logical byte\n",
		time.Since(t).Round(time.Millisecond), size(after), size(logical), float64(after)/float64(logical))

	// Reopen.
	s.setPhase("reopen")
	first := keyName(0)
	t = time.Now()
	db, err = store.Open(opts)
	if err != nil {
		return err
	}
	defer db.Close()
	vs, err := db.Get(first)
	reopen := time.Since(t)
	if err != nil {
		return err
	}
	reg, ok := vs[crdt.TypeLWWRegister].(*crdt.LWWRegister)
	if !ok {
		return fmt.Errorf("reopen: %s missing", first)
	}
	if got, _, _ := reg.Get(); !bytes.Equal(got, value(0, c.valueBytes)) {
		return fmt.Errorf("reopen: %s holds %q", first, got)
	}
	fmt.Fprintf(stdout, "reopen: %v (Open plus one Get)\n", reopen.Round(time.Millisecond))

	// Memory, before the verification scan below touches every table.
	s.stop()
	st := procStatus()
	hwm := st["VmHWM"]
	fmt.Fprintf(stdout, "peak RSS: %.1f MiB (VmHWM); now %.1f MiB (anon %.1f, file %.1f)\n",
		mib(hwm), mib(st["VmRSS"]), mib(st["RssAnon"]), mib(st["RssFile"]))
	s.report(stdout)

	if err := verify(db, c.keys); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "verify: all %d keys present after reopen\n", c.keys)
	if err := db.Close(); err != nil {
		return err
	}

	var fails []string
	if limit := c.maxRSS << 20; hwm > limit {
		fails = append(fails, fmt.Sprintf("peak RSS %.1f MiB over %d MiB", mib(hwm), c.maxRSS))
	}
	if reopen > c.maxReopen {
		fails = append(fails, fmt.Sprintf("reopen %v over %v", reopen.Round(time.Millisecond), c.maxReopen))
	}
	if len(fails) > 0 {
		for _, f := range fails {
			fmt.Fprintln(stdout, "FAIL:", f)
		}
		return errors.New(strings.Join(fails, "; "))
	}
	fmt.Fprintln(stdout, "PASS")
	return nil
}

func keyName(i int) string { return fmt.Sprintf("sensor/%08d", i) }

// value is the deterministic value of key i.
func value(i, n int) []byte {
	v := fmt.Appendf(make([]byte, 0, n), "value-%d-", i)
	for len(v) < n {
		v = append(v, 'x')
	}
	return v[:n]
}

// fill writes c.keys distinct registers from c.writers goroutines and
// returns the logical bytes written (names plus values).
func fill(ctx context.Context, e *engine.Engine, c config, stdout io.Writer, s *sampler) (int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next, written, logical atomic.Int64
	var wg sync.WaitGroup
	for range c.writers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= c.keys || ctx.Err() != nil {
					return
				}
				name, v := keyName(i), value(i, c.valueBytes)
				if _, err := e.Do(ctx, engine.Set(name, v)); err != nil {
					cancel(fmt.Errorf("write %s: %w", name, err))
					return
				}
				logical.Add(int64(len(name) + len(v)))
				written.Add(1)
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	start, last, lastN := time.Now(), time.Now(), int64(0)
	for {
		select {
		case <-finished:
			if err := context.Cause(ctx); err != nil {
				return 0, err
			}
			return logical.Load(), nil
		case now := <-tick.C:
			n := written.Load()
			fmt.Fprintf(stdout, "  %6.1fs %8d keys  %6.0f ops/s  RSS %6.1f MiB (peak %6.1f)  data dir %s\n",
				now.Sub(start).Seconds(), n, float64(n-lastN)/now.Sub(last).Seconds(),
				mib(s.current()), mib(procStatus()["VmHWM"]), size(store.DiskUsage(c.dir)))
			last, lastN = now, n
		}
	}
}

// verify checks that every key is stored.
func verify(db *store.DB, keys int) error {
	n := 0
	err := db.Scan("sensor/", "", 0, func(name string, _ map[crdt.Type]crdt.Value) error {
		if name != keyName(n) {
			return fmt.Errorf("verify: key %d is %q", n, name)
		}
		n++
		return nil
	})
	if err == nil && n != keys {
		err = fmt.Errorf("verify: %d keys stored, want %d", n, keys)
	}
	return err
}

// writeHeapProfile writes a heap profile to path, after a garbage
// collection if gc (for up-to-date in-use figures).
func writeHeapProfile(path string, gc bool) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if gc {
		runtime.GC()
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// procStatus returns the kB fields of /proc/self/status in bytes.
func procStatus() map[string]int64 {
	out := map[string]int64{}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		v, kb := strings.CutSuffix(strings.TrimSpace(v), " kB")
		if !ok || !kb {
			continue
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			out[k] = n << 10
		}
	}
	return out
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func size(b int64) string { return fmt.Sprintf("%.1f MiB", mib(b)) }

// sampler records, per phase, the peaks of RSS (and its anonymous and
// file-backed parts) and of the Go runtime's memory; with a profile path it
// writes path.peak, a heap profile, whenever RSS reaches a new high (by at
// least 8 MiB, so that it is not rewritten at every sample).
type sampler struct {
	profile string
	quit    chan struct{}
	done    chan struct{}
	once    sync.Once

	mu       sync.Mutex
	phase    string
	order    []string
	peaks    map[string]*peak
	last     int64
	top      int64 // highest RSS profiled
	topPhase string
	sample   []metrics.Sample
}

// peak holds a phase's highest RSS with its breakdown at that moment, and
// the phase's highest Go heap.
type peak struct {
	rss, anon, file  int64
	goMapped, goHeap int64 // Go runtime, at the RSS peak
	maxGoHeap        int64
}

func newSampler(every time.Duration, profile string) *sampler {
	s := &sampler{
		profile: profile,
		peaks:   map[string]*peak{},
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		sample: []metrics.Sample{
			{Name: "/memory/classes/total:bytes"},
			{Name: "/memory/classes/heap/released:bytes"},
			{Name: "/memory/classes/heap/objects:bytes"},
		},
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.take()
			select {
			case <-s.quit:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) setPhase(p string) {
	s.take() // close the previous phase with a reading
	s.mu.Lock()
	s.phase = p
	s.mu.Unlock()
	s.take()
}

func (s *sampler) take() {
	st := procStatus()
	s.mu.Lock()
	if s.phase == "" {
		s.mu.Unlock()
		return
	}
	metrics.Read(s.sample)
	mapped := int64(s.sample[0].Value.Uint64() - s.sample[1].Value.Uint64())
	heap := int64(s.sample[2].Value.Uint64())
	p := s.peaks[s.phase]
	if p == nil {
		p = &peak{}
		s.peaks[s.phase] = p
		s.order = append(s.order, s.phase)
	}
	rss := st["VmRSS"]
	s.last = rss
	if rss > p.rss {
		p.rss, p.anon, p.file = rss, st["RssAnon"], st["RssFile"]
		p.goMapped, p.goHeap = mapped, heap
	}
	p.maxGoHeap = max(p.maxGoHeap, heap)
	write := s.profile != "" && rss > s.top+8<<20
	if write {
		s.top, s.topPhase = rss, s.phase
	}
	s.mu.Unlock()
	if write {
		// The profile's in-use figures are those of the last GC cycle.
		if err := writeHeapProfile(s.profile+".peak", false); err != nil {
			fmt.Fprintln(os.Stderr, "storefill: peak heap profile:", err)
		}
	}
}

func (s *sampler) current() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *sampler) stop() {
	s.once.Do(func() {
		close(s.quit)
		<-s.done
	})
}

func (s *sampler) report(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintln(w, "sampled peaks by phase, MiB (Go: runtime-mapped memory and heap objects, live or not yet swept, at the RSS peak; max: the phase's highest heap):")
	for _, ph := range s.order {
		p := s.peaks[ph]
		fmt.Fprintf(w, "  %-7s RSS %6.1f = anon %6.1f + file %6.1f;  Go mapped %6.1f, heap %6.1f, max heap %6.1f\n",
			ph, mib(p.rss), mib(p.anon), mib(p.file), mib(p.goMapped), mib(p.goHeap), mib(p.maxGoHeap))
	}
	if s.profile != "" {
		fmt.Fprintf(w, "peak heap profile: %s.peak (RSS %.1f MiB, %s phase)\n", s.profile, mib(s.top), s.topPhase)
	}
}
