// Command overload drives an edged node at several times its capacity, with
// a mix of priority classes over HTTP and MQTT, and reports what the node
// did: latency of the requests it accepted, what it refused, whether any
// critical write was lost, its peak memory, and how long it took to serve
// normally again after the burst.
//
//	make build && go run ./scripts/overload -bin bin/edged -shedding=true
//	go run ./scripts/overload -bin bin/edged -shedding=false
//
// With -node-cpus, the node runs on those CPUs only; run the generator on
// the others to keep the two apart:
//
//	go build -o /tmp/overload ./scripts/overload
//	taskset -c 0 /tmp/overload -bin bin/edged -node-cpus 1
//
// It starts the node itself (a separate process, so its memory is its
// own: the low-memory profile, GOMEMLIMIT 256 MiB) in a temporary data
// directory with fsync durability, then:
//
//  1. measures capacity: requests of the mix per second from 16 clients
//     in a closed loop;
//  2. measures the unloaded p99 at a fifth of capacity;
//  3. sends -factor times capacity in an open loop (requests go on
//     schedule whether or not earlier ones returned) for -burst, plus
//     MQTT readings at QoS 0 and 1;
//  4. goes back to a fifth of capacity and reports when the p99 of a
//     500 ms window is within twice the unloaded p99 with nothing refused.
//
// The mix: 5% critical (counter increments in namespace alarms, classed
// critical), 30% normal writes, 15% normal reads, 50% bulk (readings, 50
// per request).
//
// With -refusals it measures instead what refusing costs the node: a node
// whose data budget is one byte refuses every bulk request, and the
// generator sends them from all its connections in a closed loop.
//
//	taskset -c 0 /tmp/overload -bin bin/edged -node-cpus 1 -refusals
//
// With -refuse free or -refuse lean, the node is spared the refusing: the
// generator sends it only the critical requests of the burst, and counts
// the others refused (free) or sends them to a second process of its own
// that answers each with a bare 429 (lean): the tail of a node whose
// refusals cost nothing, and of one whose refusals cost only the socket
// calls.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "overload:", err)
		os.Exit(1)
	}
}

// class indexes the request classes of the mix.
type class int

const (
	critical class = iota
	normal
	bulk
	classes
)

var classNames = [classes]string{"critical", "normal", "bulk"}

// result is one request's outcome.
type result struct {
	class   class
	read    bool // a normal read: it writes nothing
	code    int  // 0: no answer (timeout, connection refused)
	sent    time.Time
	latency time.Duration
}

// tally gathers results.
type tally struct {
	mu        sync.Mutex
	results   []result
	notSent   atomic.Int64 // the generator's own cap on outstanding requests
	critAcked atomic.Int64 // critical increments the node acknowledged
}

func (t *tally) add(r result) {
	t.mu.Lock()
	t.results = append(t.results, r)
	t.mu.Unlock()
}

func (t *tally) take() []result {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.results
	t.results = nil
	return r
}

type node struct {
	base, mqtt string
	cmd        *exec.Cmd
	peakRSS    atomic.Int64
	peakAnon   atomic.Int64 // at the peak
	peakFile   atomic.Int64
	exited     chan struct{}
	err        error
}

func run() error {
	bin := flag.String("bin", "bin/edged", "the edged binary")
	shed := flag.Bool("shedding", true, "run the node with load shedding on")
	factor := flag.Float64("factor", 5, "the burst, in multiples of the measured capacity")
	burst := flag.Duration("burst", 20*time.Second, "how long the burst lasts")
	procs := flag.Int("procs", 1, "GOMAXPROCS of the generator")
	nodeConns := flag.Int("max-connections", 512, "the node's http.max_connections")
	measure := flag.Duration("measure", 5*time.Second, "how long capacity and each window of the unloaded p99 are measured")
	baseWindows := flag.Int("baseline-windows", 3, "how many windows the unloaded p99 is measured in (the median is taken)")
	nodeCPUs := flag.String("node-cpus", "", "run the node on these CPUs only (a taskset -c list, such as 1); run the generator on others with taskset")
	queueTarget := flag.Duration("queue-target", 0, "the node's shedding.queue_target (0: its default)")
	refusals := flag.Bool("refusals", false, "instead, measure how many bulk requests a second the node refuses when it refuses them all (its data budget is one byte)")
	refuse := flag.String("refuse", "node", "in the burst, who refuses the requests other than critical ones: node (the node decides), free (the generator counts them refused and sends nothing: refusals that cost nothing), or lean (another process answers each with a 429 at the least an HTTP refusal costs: read the request, write a canned answer)")
	serveLean := flag.Bool("serve-refusals", false, "run the lean refuser of -refuse lean: print its port, answer every request with a 429 until standard input closes")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the node over the middle half of the burst to this file (the node serves http.pprof, on one more connection than the generator's)")
	flag.Parse()
	if *serveLean {
		return serveRefusals()
	}
	if *refuse != "node" && *refuse != "free" && *refuse != "lean" {
		return fmt.Errorf("-refuse %q: want node, free or lean", *refuse)
	}
	if *cpuprofile != "" && (*refusals || *burst < 4*time.Second) {
		return errors.New("-cpuprofile needs a burst of 4s or more, and no -refusals")
	}
	// The generator shares the machine with the node: one core for it,
	// the rest for the node.
	runtime.GOMAXPROCS(*procs)

	budget := 0
	if *refusals {
		budget = 1
	}
	n, err := startNode(*bin, *shed, *queueTarget, *nodeConns, *nodeCPUs, budget, *cpuprofile != "")
	if err != nil {
		return err
	}
	defer n.stop()
	ld := &load{n: n, conns: make([]conn, *nodeConns)}
	defer ld.closeConns()
	if *refusals {
		return ld.refusals(*measure)
	}

	capacity := ld.capacity(*measure)
	fmt.Printf("shedding: %v\ncapacity: %.0f requests/s (closed loop, 16 clients)\n", *shed, capacity)
	// The unloaded p99 of one window swings with the stalls that fall in
	// it (a flush, a compaction, a slow fsync): the baseline is the median
	// of several.
	var p99s []time.Duration
	for range *baseWindows {
		base := ld.open(capacity/5, *measure)
		p99s = append(p99s, percentile(latencies(base, -1, true), 0.99))
	}
	shown := make([]string, len(p99s))
	for i, d := range p99s {
		shown[i] = d.Round(time.Microsecond).String()
	}
	p99 := percentile(p99s, 0.5)
	fmt.Printf("unloaded p99 at %.0f/s: %s (the median of %s windows: %s)\n", capacity/5, p99.Round(time.Microsecond), measure, strings.Join(shown, " "))

	rate := capacity * *factor
	fmt.Printf("burst: %.0f requests/s for %s, plus MQTT readings\n", rate, *burst)
	stopMQTT := ld.mqtt(rate / 10)
	gen0 := ownCPU()
	cpu0, t0 := n.cpuTime(), time.Now()
	ld.tally.notSent.Store(0) // the burst's own
	profiled := make(chan error, 1)
	if *cpuprofile != "" {
		go func() { profiled <- n.profile(*cpuprofile, *burst/4, *burst/2) }()
	} else {
		profiled <- nil
	}
	stopRefuser := func() time.Duration { return -1 }
	switch *refuse {
	case "node":
	case "free":
		ld.free = true
	case "lean":
		if stopRefuser, err = ld.startRefuser(); err != nil {
			return err
		}
	}
	res := ld.open(rate, *burst)
	ld.free, ld.refuser = false, ""
	cpu1, t1 := n.cpuTime(), time.Now()
	refuserCPU := stopRefuser()
	gen1 := ownCPU()
	mq := stopMQTT()
	ld.closeConns()
	report(res, ld.tally.notSent.Load(), p99)
	if err := <-profiled; err != nil {
		fmt.Println("cpu profile:", err)
	} else if *cpuprofile != "" {
		fmt.Printf("cpu profile of the burst's middle half: %s (go tool pprof -top %s)\n", *cpuprofile, *cpuprofile)
	}
	fmt.Printf("CPU during the burst and its drain: node %.2f cores, generator %.2f\n", cores(cpu0, cpu1, t0, t1), cores(gen0, gen1, t0, t1))
	if refuserCPU >= 0 {
		fmt.Printf("lean refuser: %.2f cores\n", cores(0, refuserCPU, t0, t1))
	}
	if held, err := n.criticalCount(); err != nil {
		fmt.Println("critical: the node's counters could not be read:", err)
	} else {
		// An increment whose answer did not come (code 0) may be held
		// too: held can exceed acknowledged, never fall short of it.
		acked := ld.tally.critAcked.Load()
		fmt.Printf("critical: %d increments acknowledged so far, %d in the node's counters (%d acknowledged and lost)\n",
			acked, held, max(0, acked-held))
	}
	fmt.Printf("mqtt: %d QoS 0 and %d QoS 1 readings published, %d QoS 1 not acknowledged within 10s\n", mq.qos0, mq.qos1, mq.unacked)
	fmt.Printf("peak RSS: %.0f MiB (GOMEMLIMIT 256 MiB), of which anonymous %.0f MiB and file-backed %.0f MiB\n",
		float64(n.peakRSS.Load())/(1<<20), float64(n.peakAnon.Load())/(1<<20), float64(n.peakFile.Load())/(1<<20))
	select {
	case <-n.exited:
		fmt.Printf("the node exited during the burst: %v\n", n.err)
		return nil
	default:
	}

	rec := ld.recovery(capacity/5, 2*p99, 60*time.Second)
	ld.closeConns() // the node's connection limit has room for the request below
	if rec < 0 {
		fmt.Println("recovery: not back to normal service within 60s")
		if resp, err := oneShot.Get(n.base + "/v1/status"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			fmt.Printf("status: %s\n", b)
		}
	} else {
		fmt.Printf("recovery: normal service %.1fs after the burst ended\n", rec.Seconds())
	}
	return nil
}

// startNode runs the binary with a fresh data directory and free ports
// (on the CPUs listed in cpus, if any), and samples its RSS until it
// exits.
//
// With pprof the node serves its profiler, and takes one connection more
// than the generator's, for the profile's.
func startNode(bin string, shed bool, queueTarget time.Duration, nodeConns int, cpus string, budget int, pprof bool) (*node, error) {
	dir, err := os.MkdirTemp("", "overload")
	if err != nil {
		return nil, err
	}
	httpPort, mqttPort := freePort(), freePort()
	if pprof {
		nodeConns++
	}
	conf := fmt.Sprintf(`node: {data_dir: %q}
http: {addr: "127.0.0.1:%d", max_connections: %d, pprof: %v}
mqtt: {addr: "127.0.0.1:%d", queue_length: 256}
log: {level: warn}
readings: {trust_clock: true}
store: {budget_bytes: %d}
shedding:
  enabled: %v
  namespaces: {alarms: critical}
`, filepath.Join(dir, "data"), httpPort, nodeConns, pprof, mqttPort, budget, shed)
	if queueTarget > 0 {
		conf += fmt.Sprintf("  queue_target: %s\n", queueTarget)
	}
	if err := os.WriteFile(filepath.Join(dir, "edged.yaml"), []byte(conf), 0o600); err != nil {
		return nil, err
	}
	args := []string{bin, "run", "--config", filepath.Join(dir, "edged.yaml")}
	if cpus != "" {
		args = append([]string{"taskset", "-c", cpus}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	n := &node{base: fmt.Sprintf("http://127.0.0.1:%d", httpPort), mqtt: fmt.Sprintf("tcp://127.0.0.1:%d", mqttPort), cmd: cmd, exited: make(chan struct{})}
	go func() {
		n.err = cmd.Wait()
		close(n.exited)
		os.RemoveAll(dir)
	}()
	go n.sampleRSS()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := oneShot.Get(n.base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return n, nil
			}
		}
		select {
		case <-n.exited:
			return nil, fmt.Errorf("edged exited: %v", n.err)
		default:
		}
		if time.Now().After(deadline) {
			n.stop()
			return nil, errors.New("edged not ready within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// profile waits for after, then writes a CPU profile of the node over
// the next d (whole seconds) to file. It fails if the profile ended more
// than a second late: its request waited for a connection, and the
// profile is not of the time asked for.
func (n *node) profile(file string, after, d time.Duration) error {
	time.Sleep(after)
	secs := max(1, int(d.Seconds()))
	client := &http.Client{Timeout: d + 30*time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	resp, err := client.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", n.base, secs))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /debug/pprof/profile: %s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if late := time.Since(start) - time.Duration(secs)*time.Second; late > time.Second {
		return fmt.Errorf("the profile ended %s late, not written", late.Round(time.Millisecond))
	}
	return os.WriteFile(file, b, 0o644)
}

// cpuTime returns the CPU time the node has used so far, user and
// system; -1 once it cannot be read (the node exited).
func (n *node) cpuTime() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	// Fields after the command name (which may hold ") "): state is the
	// first, utime and stime the 12th and 13th, in clock ticks.
	s := string(b)
	f := strings.Fields(s[strings.LastIndex(s, ") ")+2:])
	if len(f) < 13 {
		return -1
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// ownCPU returns the CPU time the generator has used so far, user and
// system.
func ownCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cores returns a process's CPU use, in cores, between CPU times c0 and c1
// read at t0 and t1: -1 if either could not be read.
func cores(c0, c1 time.Duration, t0, t1 time.Time) float64 {
	if c0 < 0 || c1 < 0 {
		return -1
	}
	return (c1 - c0).Seconds() / t1.Sub(t0).Seconds()
}

// oneShot is the client of the generator's few requests outside the load:
// it keeps no connection open, since every one the node keeps for it is
// one of its http.max_connections that the generator's own connections
// then wait for.
var oneShot = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// criticalCount returns the sum of the critical counters the mix
// increments, as the node holds them. Its reads are normal work, which
// the node may still refuse for a while after the burst: a refused read
// is tried again for up to 30s.
func (n *node) criticalCount() (int64, error) {
	var sum int64
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < len(criticalRequests); {
		resp, err := oneShot.Get(fmt.Sprintf("%s/v1/kv/alarms/a%d", n.base, i))
		if err != nil {
			return 0, err
		}
		var doc struct{ Value int64 }
		err = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		switch {
		case (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && time.Now().Before(deadline):
			time.Sleep(100 * time.Millisecond)
			continue
		case resp.StatusCode == http.StatusNotFound: // never incremented
		case err != nil || resp.StatusCode != http.StatusOK:
			return 0, fmt.Errorf("alarms/a%d: %s, %v", i, resp.Status, err)
		default:
			sum += doc.Value
		}
		i++
	}
	return sum, nil
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat's times:
// 100 on every Linux architecture edged runs on.
const clockTicks = 100

func (n *node) stop() {
	n.cmd.Process.Signal(os.Interrupt)
	select {
	case <-n.exited:
	case <-time.After(15 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
}

// sampleRSS records the peak resident set every 50ms, with its anonymous
// part (the Go heap and stacks, which GOMEMLIMIT bounds) and its
// file-backed part (Badger's memory-mapped files, which the kernel can
// reclaim) at that moment.
func (n *node) sampleRSS() {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-n.exited:
			return
		case <-t.C:
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
		if err != nil {
			continue
		}
		kb := map[string]int64{}
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && (k == "VmRSS" || strings.HasPrefix(k, "Rss")) {
				kb[k], _ = strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			}
		}
		if rss := kb["VmRSS"] * 1024; rss > n.peakRSS.Load() {
			n.peakRSS.Store(rss)
			n.peakAnon.Store(kb["RssAnon"] * 1024)
			n.peakFile.Store((kb["RssFile"] + kb["RssShmem"]) * 1024)
		}
	}
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// load sends the mix to a node. It writes requests and reads responses
// on connections of its own: net/http's client, with a goroutine and a
// channel hand-off per request, cost the generator's core more than the
// burst's rate allowed, and its own delays counted as the node's latency.
type load struct {
	n     *node
	conns []conn // as many as the node takes (http.max_connections)
	seq   atomic.Int64
	tally tally
	// free: requests other than critical ones are counted refused, not
	// sent (-refuse free).
	free bool
	// refuser, when set, is the address of the lean refuser that the
	// requests other than critical ones go to, on the refused
	// connections (-refuse lean).
	refuser string
	refused []conn
}

// conn is one keep-alive HTTP/1.1 connection to the node, used by one
// request at a time.
type conn struct {
	c  net.Conn
	br *bufio.Reader
}

func (c *conn) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

func (l *load) closeConns() {
	for i := range l.conns {
		l.conns[i].close()
	}
	for i := range l.refused {
		l.refused[i].close()
	}
}

// startRefuser starts the lean refuser (-refuse lean) in a process of its
// own, with as many CPUs as the node, and sends the requests other than
// critical ones to it. The function returned stops it and returns the CPU
// time it used.
func (l *load) startRefuser() (func() time.Duration, error) {
	cmd := exec.Command(os.Args[0], "-serve-refusals")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() time.Duration {
		stdin.Close()
		if cmd.Wait() != nil {
			return -1
		}
		return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stop()
		return nil, fmt.Errorf("lean refuser: %w", err)
	}
	l.refuser, l.refused = strings.TrimSpace(addr), make([]conn, len(l.conns))
	return stop, nil
}

// serveRefusals runs the lean refuser: each connection's requests are
// read (the head up to its blank line, then Content-Length bytes of body)
// and answered with a canned 429, with no HTTP machinery beyond that: the
// least an HTTP refusal costs, a read and a write on the socket.
func serveRefusals() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		ln.Close()
	}()
	answer := []byte("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n")
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil
		}
		go func() {
			defer c.Close()
			br := bufio.NewReaderSize(c, 16<<10)
			for {
				body := 0
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(line) <= 2 {
						break
					}
					if k, v, ok := bytes.Cut(line, []byte(":")); ok && strings.EqualFold(string(k), "Content-Length") {
						body, _ = strconv.Atoi(strings.TrimSpace(string(v)))
					}
				}
				if _, err := br.Discard(body); err != nil {
					return
				}
				if _, err := c.Write(answer); err != nil {
					return
				}
			}
		}()
	}
}

// request sends the i-th request of the mix on c and records its outcome.
func (l *load) request(w int, i int64) {
	cl, req, read := mix(i)
	switch {
	case cl == critical:
	case l.free:
		l.tally.add(result{class: cl, read: read, code: http.StatusTooManyRequests})
		return
	case l.refuser != "":
		l.sendTo(&l.refused[w], l.refuser, result{class: cl, read: read}, req)
		return
	}
	l.send(&l.conns[w], result{class: cl, read: read}, req)
}

// send sends req on c and records its outcome in r. The latency runs from
// the moment the request has a connection: the node's own latency, not
// the generator's queue for connections.
func (l *load) send(c *conn, r result, req []byte) {
	l.sendTo(c, strings.TrimPrefix(l.n.base, "http://"), r, req)
}

// sendTo is send, to addr.
func (l *load) sendTo(c *conn, addr string, r result, req []byte) {
	cl := r.class
	if c.c == nil {
		nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			l.tally.add(r)
			return
		}
		c.c, c.br = nc, bufio.NewReader(nc)
	}
	start := time.Now()
	r.sent = start
	c.c.SetDeadline(start.Add(answerTimeout))
	_, err := c.c.Write(req)
	var resp *http.Response
	if err == nil {
		resp, err = http.ReadResponse(c.br, nil)
	}
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	r.latency = time.Since(start)
	if err != nil {
		c.close() // no answer: code 0
	} else {
		r.code = resp.StatusCode
		if resp.Close {
			c.close()
		}
	}
	if cl == critical && answered(r.code) {
		l.tally.critAcked.Add(1)
	}
	l.tally.add(r)
}

// mix returns the class and the bytes of the i-th request of the mix, and
// whether it is a read: i%20 picks the kind, and i/20 the key or body, so
// that every kind goes round all of its keys (reads those the writes
// write).
func mix(i int64) (class, []byte, bool) {
	j := i / 20
	switch k := i % 20; {
	case k == 0:
		return critical, criticalRequests[j%int64(len(criticalRequests))], false
	case k < 7:
		return normal, writeRequests[(j*6+k)%int64(len(writeRequests))], false
	case k < 10:
		return normal, readRequests[(j*3+k)%int64(len(readRequests))], true
	default:
		return bulk, readingRequests[(j*10+k)%int64(len(readingRequests))], false
	}
}

// The requests of the mix, made once so that the generator spends its CPU
// on sending.
var (
	criticalRequests = requests(10, func(i int) (string, string, string) {
		return "POST", fmt.Sprintf("/v1/kv/alarms/a%d", i), `{"type":"counter","op":"inc"}`
	})
	writeRequests = requests(100, func(i int) (string, string, string) {
		return "POST", fmt.Sprintf("/v1/kv/app/k%d", i), `{"type":"counter","op":"inc"}`
	})
	readRequests = requests(100, func(i int) (string, string, string) {
		return "GET", fmt.Sprintf("/v1/kv/app/k%d", i), ""
	})
	readingRequests = requests(len(readingBodies), func(i int) (string, string, string) {
		return "POST", "/v1/readings", readingBodies[i]
	})
)

// requests returns n HTTP/1.1 requests made by f.
func requests(n int, f func(i int) (method, path, body string)) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		method, path, body := f(i)
		var b bytes.Buffer
		fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: edged\r\n", method, path)
		if body != "" {
			fmt.Fprintf(&b, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
		}
		b.WriteString("\r\n")
		b.WriteString(body)
		out[i] = b.Bytes()
	}
	return out
}

// readingBodies are request bodies of 50 readings each, made once so that
// the generator spends its CPU on sending.
var readingBodies = func() []string {
	bodies := make([]string, 20)
	t0 := time.Now().Add(-time.Hour).UnixNano()
	for i := range bodies {
		var b bytes.Buffer
		b.WriteString(`{"readings":[`)
		for j := range 50 {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"sensor":"s%d","value":%d.5,"ts":%q}`, i, j, time.Unix(0, t0+int64(j)*1e6).UTC().Format(time.RFC3339Nano))
		}
		b.WriteString(`]}`)
		bodies[i] = b.String()
	}
	return bodies
}()

// capacity measures the mix's throughput from 16 clients in a closed
// loop: the requests the node answered, not those it refused (a refusal
// is cheap, and a node that refused most of the measure would seem to
// have a large capacity).
func (l *load) capacity(d time.Duration) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for w := range min(16, len(l.conns)) {
		wg.Go(func() {
			for ctx.Err() == nil {
				l.request(w, l.seq.Add(1))
			}
		})
	}
	wg.Wait()
	done := 0
	for _, r := range l.tally.take() {
		if answered(r.code) {
			done++
		}
	}
	return float64(done) / d.Seconds()
}

// refusals sends bulk requests from every connection in a closed loop for
// d, to a node that refuses them all, and prints how many it refused a
// second: what refusing costs the node, against what taking the mix
// costs (its capacity).
func (l *load) refusals(d time.Duration) error {
	// The node sees its data directory over budget at its first load
	// measure, a tenth of a second after it starts.
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.send(&l.conns[0], result{class: bulk}, readingRequests[0])
		if rs := l.tally.take(); rs[0].code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the node did not start refusing bulk requests within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	cpu0, t0 := l.n.cpuTime(), time.Now()
	for i := range l.conns {
		c := &l.conns[i]
		wg.Go(func() {
			for k := i; ctx.Err() == nil; k++ {
				l.send(c, result{class: bulk}, readingRequests[k%len(readingRequests)])
			}
		})
	}
	wg.Wait()
	cpu1 := l.n.cpuTime()
	refused, other := 0, 0
	for _, r := range l.tally.take() {
		if r.code == http.StatusServiceUnavailable {
			refused++
		} else {
			other++
		}
	}
	rate := float64(refused) / d.Seconds()
	fmt.Printf("refusals: %.0f bulk requests/s refused (503) from %d connections in a closed loop; %d other outcomes\n",
		rate, len(l.conns), other)
	if cpu0 >= 0 && cpu1 >= 0 && refused > 0 {
		fmt.Printf("node CPU: %.2f cores, %.1f µs a refusal\n", cores(cpu0, cpu1, t0, time.Now()), float64((cpu1-cpu0).Microseconds())/float64(refused))
	}
	return nil
}

// answerTimeout is how long a request waits for its answer: longer than
// the node holds a critical request waiting for a slot (10s), so that a
// refusal after that wait is seen as one.
const answerTimeout = 15 * time.Second

// maxOutstanding caps the generator's requests waiting for a connection,
// so that it does not fall over itself; requests over it are counted, not
// sent.
const maxOutstanding = 8192

// open sends rate requests per second for d on schedule, each on the
// first free connection, and returns the outcomes once all are answered.
func (l *load) open(rate float64, d time.Duration) []result {
	queue := make(chan int64, maxOutstanding)
	var wg sync.WaitGroup
	for w := range l.conns {
		wg.Go(func() {
			for i := range queue {
				l.request(w, i)
			}
		})
	}
	start := time.Now()
	sent := 0
	for time.Since(start) < d {
		due := int(time.Since(start).Seconds() * rate)
		for ; sent < due; sent++ {
			select {
			case queue <- l.seq.Add(1):
			default:
				l.tally.notSent.Add(1)
			}
		}
		time.Sleep(time.Millisecond)
	}
	close(queue)
	wg.Wait()
	return l.tally.take()
}

type mqttCounts struct{ qos0, qos1, unacked int64 }

// mqtt publishes bulk readings at rate per second, half at QoS 0 and
// half at QoS 1, until the returned function is called.
func (l *load) mqtt(rate float64) func() mqttCounts {
	var counts mqttCounts
	opts := paho.NewClientOptions().AddBroker(l.n.mqtt).SetClientID("overload").SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		fmt.Println("mqtt: not connected:", tok.Error())
		return func() mqttCounts { return counts }
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var toks []paho.Token
	var mu sync.Mutex
	wg.Go(func() {
		start := time.Now()
		sent := 0
		for ctx.Err() == nil {
			for due := int(time.Since(start).Seconds() * rate); sent < due; sent++ {
				qos := byte(sent % 2)
				tok := c.Publish(fmt.Sprintf("edged/overload/readings/m%d", sent%10), qos, false, strconv.Itoa(sent))
				if qos == 0 {
					counts.qos0++
				} else {
					counts.qos1++
					mu.Lock()
					toks = append(toks, tok)
					mu.Unlock()
				}
			}
			time.Sleep(time.Millisecond)
		}
	})
	return func() mqttCounts {
		cancel()
		wg.Wait()
		deadline := time.Now().Add(10 * time.Second)
		for _, t := range toks {
			if !t.WaitTimeout(time.Until(deadline)) {
				counts.unacked++
			}
		}
		c.Disconnect(100)
		return counts
	}
}

// recovery sends rate requests per second in 500ms windows until one has
// a p99 within target and nothing refused, and returns how long that
// took, or -1.
func (l *load) recovery(rate float64, target time.Duration, limit time.Duration) time.Duration {
	start := time.Now()
	var windows []string
	defer func() { fmt.Printf("recovery windows (p99, refused): %s\n", strings.Join(windows, " ")) }()
	for time.Since(start) < limit {
		res := l.open(rate, 500*time.Millisecond)
		refused := 0
		for _, r := range res {
			if !answered(r.code) {
				refused++
			}
		}
		p99 := percentile(latencies(res, -1, true), 0.99)
		windows = append(windows, fmt.Sprintf("%.1fms,%d", float64(p99)/1e6, refused))
		if refused == 0 && p99 <= target {
			return time.Since(start)
		}
	}
	return -1
}

// latencies returns the latencies of results of class c (-1: all), of
// the accepted ones only when accepted is set.
func latencies(rs []result, c class, accepted bool) []time.Duration {
	var out []time.Duration
	for _, r := range rs {
		if (c < 0 || r.class == c) && (!accepted || answered(r.code)) {
			out = append(out, r.latency)
		}
	}
	return out
}

// answered reports whether a status is the node's answer to the request
// (a read of a key not written yet is a 404), not a refusal or a failure.
func answered(code int) bool { return code == 200 || code == 204 || code == 404 }

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*p))]
}

// bySecond returns the p99 latency of the accepted requests sent in each
// second from the first, in milliseconds: whether the tail is the burst's
// start, before the governor has met it, or its whole length.
func bySecond(rs []result) string {
	var first time.Time
	for _, r := range rs {
		if !r.sent.IsZero() && (first.IsZero() || r.sent.Before(first)) {
			first = r.sent
		}
	}
	var secs [][]time.Duration
	for _, r := range rs {
		if r.sent.IsZero() || !answered(r.code) {
			continue
		}
		i := int(r.sent.Sub(first) / time.Second)
		for len(secs) <= i {
			secs = append(secs, nil)
		}
		secs[i] = append(secs[i], r.latency)
	}
	out := make([]string, len(secs))
	for i, ls := range secs {
		out[i] = fmt.Sprintf("%.0f", float64(percentile(ls, 0.99))/1e6)
	}
	return strings.Join(out, " ")
}

// report prints, per class, what the node took and refused.
func report(rs []result, notSent int64, unloaded time.Duration) {
	fmt.Printf("%-9s %9s %9s %9s %9s %9s %12s\n", "class", "sent", "accepted", "refused", "failed", "p50", "p99 accepted")
	codes := map[int]int{}
	for c := range classes {
		var sent, ok, refused, failed int
		for _, r := range rs {
			if r.class != c {
				continue
			}
			sent++
			switch {
			case answered(r.code):
				ok++
			case r.code == 429 || r.code == 503:
				refused++
			default:
				failed++ // no answer in 10s, or another error
				codes[r.code]++
			}
		}
		ls := latencies(rs, c, true)
		fmt.Printf("%-9s %9d %9d %9d %9d %9s %12s\n", classNames[c], sent, ok, refused, failed,
			percentile(ls, 0.5).Round(time.Microsecond), percentile(ls, 0.99).Round(time.Microsecond))
	}
	if len(codes) > 0 {
		fmt.Printf("failures by status (0: no answer within 15s): %v\n", codes)
	}
	var reads []time.Duration
	for _, r := range rs {
		if r.read && answered(r.code) {
			reads = append(reads, r.latency)
		}
	}
	fmt.Printf("of the normal requests accepted, reads (they write nothing): %d, p50 %s, p99 %s\n",
		len(reads), percentile(reads, 0.5).Round(time.Microsecond), percentile(reads, 0.99).Round(time.Microsecond))
	fmt.Printf("p99 of accepted requests by second of the burst: %s\n", bySecond(rs))
	all := percentile(latencies(rs, -1, true), 0.99)
	fmt.Printf("p99 of accepted requests: %s (%.1f× the unloaded p99); %d requests over the generator's cap of %d outstanding were not sent\n",
		all.Round(time.Microsecond), float64(all)/float64(max(unloaded, 1)), notSent, maxOutstanding)
}
