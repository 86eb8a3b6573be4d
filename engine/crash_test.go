package engine_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/engine"
	"github.com/edged-dev/edged/store"
)

// The crash test runs a child process (this test binary, in the role of
// TestCrashChild) that writes with fsync durability and prints a line for
// every acknowledged write; the parent kills it with SIGKILL at a random
// moment, reopens the data directory and checks that every acknowledged
// write is there and that the state equals the join of the logged deltas.

const (
	crashDirEnv  = "EDGED_CRASH_DIR"
	crashWriters = 8
)

func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestCrashRecovery as its child process")
	}
	db, err := store.Open(store.Options{Dir: dir, Durability: store.Fsync})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	e := engine.New(db, 1, engine.Config{})
	go e.Run(context.Background())
	var mu sync.Mutex
	ack := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for w := range crashWriters {
		wg.Go(func() {
			for i := 0; ; i++ {
				if i%2 == 0 {
					v, err := e.Do(context.Background(), engine.Add(fmt.Sprintf("c%d", w), 1))
					if err != nil {
						ack("error %v", err)
						return
					}
					ack("counter c%d %d", w, v.(*crdt.PNCounter).Value())
				} else {
					elem := fmt.Sprintf("%d-%d", os.Getpid(), i)
					if _, err := e.Do(context.Background(), engine.AddElems(fmt.Sprintf("s%d", w), elem)); err != nil {
						ack("error %v", err)
						return
					}
					ack("set s%d %s", w, elem)
				}
			}
		})
	}
	wg.Wait()
	os.Exit(4)
}

func TestCrashRecovery(t *testing.T) {
	cycles := 50
	if testing.Short() {
		cycles = 5
	}
	if s := os.Getenv("EDGED_CRASH_CYCLES"); s != "" {
		cycles, _ = strconv.Atoi(s)
	}
	dir := t.TempDir()
	counters := map[string]int64{}        // highest acknowledged value
	elems := map[string]map[string]bool{} // acknowledged set elements
	for cycle := range cycles {
		acked := crashOnce(t, dir, rand.IntN(400))
		for _, line := range acked {
			f := strings.Fields(line)
			switch {
			case len(f) == 3 && f[0] == "counter":
				n, _ := strconv.ParseInt(f[2], 10, 64)
				counters[f[1]] = max(counters[f[1]], n)
			case len(f) == 3 && f[0] == "set":
				if elems[f[1]] == nil {
					elems[f[1]] = map[string]bool{}
				}
				elems[f[1]][f[2]] = true
			default:
				t.Fatalf("cycle %d: child said %q", cycle, line)
			}
		}
		db, err := store.Open(store.Options{Dir: dir, Durability: store.None})
		if err != nil {
			t.Fatalf("cycle %d: reopen after SIGKILL: %v", cycle, err)
		}
		for name, want := range counters {
			vs, err := db.Get(name)
			if err != nil {
				t.Fatal(err)
			}
			if got := vs[crdt.TypePNCounter].(*crdt.PNCounter).Value(); got < want {
				t.Fatalf("cycle %d: %s = %d, but %d was acknowledged", cycle, name, got, want)
			}
		}
		for name, want := range elems {
			vs, err := db.Get(name)
			if err != nil {
				t.Fatal(err)
			}
			s, _ := vs[crdt.TypeAWSet].(*crdt.AWSet)
			for e := range want {
				if s == nil || !s.Contains(e) {
					t.Fatalf("cycle %d: acknowledged element %s of %s lost", cycle, e, name)
				}
			}
		}
		checkReplay(t, db)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d cycles; %d counters, %d sets checked", cycles, len(counters), len(elems))
}

// crashOnce runs the child until it has acknowledged about acks writes,
// kills it with SIGKILL and returns every acknowledgement it printed.
func crashOnce(t *testing.T, dir string, acks int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "counter ") || strings.HasPrefix(line, "set ") {
			lines = append(lines, line)
		} else if strings.HasPrefix(line, "error ") || strings.HasPrefix(line, "open:") {
			lines = append(lines, line)
		}
		if !killed && len(lines) >= acks {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	// Lines already in the pipe when the child died were acknowledged too.
	cmd.Wait()
	if !killed {
		t.Fatalf("child exited before it was killed: %v", cmd.ProcessState)
	}
	return lines
}
