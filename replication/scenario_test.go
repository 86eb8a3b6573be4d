package replication_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/edged-dev/edged/crdt"
	"github.com/edged-dev/edged/replication"
	"github.com/edged-dev/edged/replication/simtest"
)

// TestScenarios runs the scripts in testdata/*.txt. Each line is a
// command; # starts a comment:
//
//	nodes N [loss=P] [dup=P] [seed=S]   start N meshed nodes (first line)
//	add I SET ELEM / remove I SET ELEM   node I changes an add-wins set
//	inc I COUNTER N                      node I adds N to a counter
//	partition 0 1 | 2 3                  cut the links between the groups
//	heal                                 restore every link
//	crash I / restart I                  stop node I (its store survives) / start it
//	rounds N                             N rounds: tick, then deliver everything
//	tick / deliver N                     every node ticks / N messages in flight are delivered
//	converge                             rounds until every node is equal (at most 200)
//	set I SET ELEM...                    node I's set holds exactly these (- for none)
//	counter I COUNTER N                  node I's counter is N
//	differ I J                           nodes I and J hold different states
//	fill I PREFIX N                      node I adds an element to N sets PREFIX000…
//	gc I                                 node I collects what every peer acknowledged
//	truncate I                           node I drops its whole log (a data budget)
//	log I N                              node I's log holds N entries
//	transfers I N                        node I finished N state transfers
//	transferring I                       node I is catching up by state transfer
func TestScenarios(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no scenarios in testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { runScenario(t, f) })
	}
}

func runScenario(t *testing.T, path string) {
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var sim *simtest.Sim
	sc := bufio.NewScanner(file)
	for line := 1; sc.Scan(); line++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		args := strings.Fields(text)
		if len(args) == 0 {
			continue
		}
		fail := func(format string, a ...any) {
			t.Helper()
			t.Fatalf("%s:%d: %s: %s", path, line, text, fmt.Sprintf(format, a...))
		}
		num := func(i int) int {
			n, err := strconv.Atoi(args[i])
			if err != nil {
				fail("argument %d: %v", i, err)
			}
			return n
		}
		if sim == nil && args[0] != "nodes" {
			fail("the first command must be nodes")
		}
		switch args[0] {
		case "nodes":
			var net simtest.Net
			seed := uint64(1)
			for _, kv := range args[2:] {
				k, v, _ := strings.Cut(kv, "=")
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					fail("%s: %v", kv, err)
				}
				switch k {
				case "loss":
					net.Loss = f
				case "dup":
					net.Duplicate = f
				case "seed":
					seed = uint64(f)
				default:
					fail("unknown option %s", k)
				}
			}
			sim = simtest.New(num(1), seed, net, replication.Config{RoundTicks: 2, MaxBatchBytes: 4096})
		case "add", "remove":
			set, elem := args[2], args[3]
			add := args[0] == "add"
			err = sim.Write(num(1), func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
				return m.Update(crdt.Field{Name: set, Type: crdt.TypeAWSet}, func(v crdt.Value) (crdt.Causal, error) {
					if add {
						return v.(*crdt.AWSet).Add(g, elem), nil
					}
					return v.(*crdt.AWSet).Remove(elem), nil
				})
			})
		case "inc":
			by := int64(num(3))
			err = sim.Write(num(1), func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
				return m.Update(crdt.Field{Name: args[2], Type: crdt.TypePNCounter}, func(v crdt.Value) (crdt.Causal, error) { return v.(*crdt.PNCounter).Add(g, by) })
			})
		case "partition":
			var groups [][]int
			cur := []int{}
			for i, a := range args[1:] {
				if a == "|" {
					groups, cur = append(groups, cur), []int{}
					continue
				}
				cur = append(cur, num(i+1))
			}
			sim.Partition(append(groups, cur)...)
		case "heal":
			sim.Heal()
		case "crash":
			sim.Crash(num(1))
		case "restart":
			sim.Restart(num(1))
		case "rounds":
			for range num(1) {
				if err = sim.Round(); err != nil {
					break
				}
			}
		case "tick":
			err = sim.Tick()
		case "deliver":
			for range num(1) {
				if _, err = sim.Deliver(); err != nil {
					break
				}
			}
		case "converge":
			for r := 0; !sim.Converged() || sim.InFlight() > 0; r++ {
				if r == 200 {
					fail("not converged after 200 rounds")
				}
				if err = sim.Round(); err != nil {
					break
				}
			}
		case "set":
			want := args[3:]
			if len(want) == 1 && want[0] == "-" {
				want = nil
			}
			var got []string
			if m, ok := sim.Nodes[num(1)].State.Value.(*crdt.ORMap); ok {
				if s, ok := m.Field(crdt.Field{Name: args[2], Type: crdt.TypeAWSet}).(*crdt.AWSet); ok {
					got = s.Elements()
				}
			}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				fail("set is %v", got)
			}
		case "counter":
			var got int64
			if m, ok := sim.Nodes[num(1)].State.Value.(*crdt.ORMap); ok {
				if c, ok := m.Field(crdt.Field{Name: args[2], Type: crdt.TypePNCounter}).(*crdt.PNCounter); ok {
					got = c.Value()
				}
			}
			if got != int64(num(3)) {
				fail("counter is %d", got)
			}
		case "fill":
			for k := range num(3) {
				name := fmt.Sprintf("%s%03d", args[2], k)
				if err = sim.Write(num(1), func(m *crdt.ORMap, g *crdt.DotGen) (crdt.Causal, error) {
					return m.Update(crdt.Field{Name: name, Type: crdt.TypeAWSet}, func(v crdt.Value) (crdt.Causal, error) {
						return v.(*crdt.AWSet).Add(g, strings.Repeat("x", 64)), nil
					})
				}); err != nil {
					break
				}
			}
		case "gc":
			sim.Nodes[num(1)].Collect()
		case "truncate":
			sim.Nodes[num(1)].Truncate()
		case "log":
			if got := sim.Nodes[num(1)].LogLen(); got != num(2) {
				fail("log holds %d entries", got)
			}
		case "transfers":
			if got := sim.Nodes[num(1)].Sync.Stats().TransfersDone; got != uint64(num(2)) {
				fail("%d transfers done", got)
			}
		case "transferring":
			if _, ok := sim.Nodes[num(1)].Sync.Transferring(); !ok {
				fail("no state transfer in progress")
			}
		case "differ":
			if sim.Nodes[num(1)].Encoded() == sim.Nodes[num(2)].Encoded() {
				fail("the nodes hold the same state")
			}
		default:
			fail("unknown command")
		}
		if err != nil {
			fail("%v", err)
		}
	}
	if sim != nil {
		t.Logf("%d messages, %d bytes on the wire", sim.Sent, sim.Bytes)
	}
}
