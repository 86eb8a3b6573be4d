package lineproto_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/edged-dev/edged/lineproto"
)

// Benchmarks over batch sizes. Run them with
//
//	go test -run '^$' -bench . -benchmem ./lineproto
//
// lines/s counts points parsed and delivered per second on one core; B/op
// and allocs/op are per body. Telegraf's default batch is 1000 metrics; a
// body of 5000 is a busy agent's flush.

// benchNow is the time of points without timestamp.
const benchNow = 1_700_000_000_000_000_000

// benchSimple returns n lines of the simple shape the throughput target is
// set for: two tags, two float fields, a nanosecond timestamp.
func benchSimple(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "cpu,host=host%d,region=eu usage_idle=%d.5,usage_user=3.2 %d\n", i%10, 90-i%7, benchNow+int64(i)*1e9)
	}
	return b.Bytes()
}

// benchTelegraf returns n lines shaped like Telegraf's system inputs:
// several measurements, more tags and fields, integers, a string and an
// escaped tag value.
func benchTelegraf(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		ts := benchNow + int64(i/4)*10e9
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "cpu,cpu=cpu%d,host=edge-01 usage_guest=0,usage_idle=%d.25,usage_iowait=0.1,usage_system=1.75,usage_user=%d.5 %d\n", i%4, 90-i%9, i%9, ts)
		case 1:
			fmt.Fprintf(&b, "mem,host=edge-01 active=%di,available=%di,available_percent=71.3,buffered=28672i,free=%di,used_percent=28.7 %d\n", 1<<30+i, 3<<30, 1<<29, ts)
		case 2:
			fmt.Fprintf(&b, "disk,device=mmcblk0p2,fstype=ext4,host=edge-01,mode=rw,path=/var/lib/edged free=%di,inodes_used=%di,total=31254429696i,used_percent=%d.125 %d\n", 1<<34, 100000+i, 40+i%3, ts)
		default:
			fmt.Fprintf(&b, "system,host=edge-01,location=Hall\\ 2 load1=0.%d,n_cpus=4i,uptime=%du,uptime_format=\"%d days,  3:04\" %d\n", i%100, 86400+i, i%30, ts)
		}
	}
	return b.Bytes()
}

func BenchmarkParse(b *testing.B) {
	for _, shape := range []struct {
		name string
		gen  func(int) []byte
	}{{"simple", benchSimple}, {"telegraf", benchTelegraf}} {
		for _, n := range []int{1, 100, 5000} {
			body := shape.gen(n)
			b.Run(fmt.Sprintf("%s/lines=%d", shape.name, n), func(b *testing.B) {
				benchParse(b, body, n, func(body []byte, fn func(*lineproto.Point) error) error {
					return lineproto.Parse(body, lineproto.Nanosecond, benchNow, lineproto.Limits{}, fn)
				})
			})
		}
	}
	// The two passes of Parse apart: validating alone (fn nil), and the
	// one-pass ParseAll, which allocates the points it returns.
	body := benchSimple(5000)
	b.Run("simple-validate-only/lines=5000", func(b *testing.B) {
		benchParse(b, body, 5000, func(body []byte, _ func(*lineproto.Point) error) error {
			return lineproto.Parse(body, lineproto.Nanosecond, benchNow, lineproto.Limits{}, nil)
		})
	})
	b.Run("simple-ParseAll/lines=5000", func(b *testing.B) {
		benchParse(b, body, 5000, func(body []byte, fn func(*lineproto.Point) error) error {
			pts, err := lineproto.ParseAll(body, lineproto.Nanosecond, benchNow, lineproto.Limits{})
			for i := range pts {
				fn(&pts[i])
			}
			return err
		})
	})
}

// benchParse runs parse over body (of n lines) b.N times and reports
// lines/s.
func benchParse(b *testing.B, body []byte, n int, parse func([]byte, func(*lineproto.Point) error) error) {
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var sum float64
	fn := func(p *lineproto.Point) error {
		v, _ := p.Fields[0].Number()
		sum += v
		return nil
	}
	for b.Loop() {
		if err := parse(body, fn); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "lines/s")
	_ = sum
}

// BenchmarkAppendPoint: writing points, as a load generator does.
func BenchmarkAppendPoint(b *testing.B) {
	pts, err := lineproto.ParseAll(benchTelegraf(100), lineproto.Nanosecond, benchNow, lineproto.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = buf[:0]
		for i := range pts {
			if buf, err = lineproto.AppendPoint(buf, &pts[i], lineproto.Nanosecond); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(b.N)*float64(len(pts))/b.Elapsed().Seconds(), "lines/s")
}
