package lineproto

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// Parse parses body, a whole write request, and calls fn for each point in
// the order of the body.
//
// Timestamps are in units of prec; a point without one gets now (Unix
// nanoseconds) truncated to prec. lim bounds the body (zero fields mean the
// defaults).
//
// Parse is all or nothing: it validates the whole body first, and if any
// line is bad it returns the first problem, a *SyntaxError, without having
// called fn. Only then does it parse the body again and deliver the
// points. The second pass costs about as much again as the first, and
// memory stays constant whatever the size of the body.
//
// The *Point passed to fn, its Tags and its Fields are reused for the next
// point: fn may modify them but must not retain them after it returns (use
// Point.Clone). The strings are immutable and may be kept. If fn returns an
// error, Parse stops and returns it unchanged; the points before were
// delivered. An invalid prec or lim is an error that is not a
// *SyntaxError. fn may be nil to validate only.
//
// Parse is safe for concurrent use; it draws a Parser from a pool.
func Parse(body []byte, prec Precision, now int64, lim Limits, fn func(*Point) error) error {
	ps := parserPool.Get().(*Parser)
	defer parserPool.Put(ps)
	return ps.Parse(body, prec, now, lim, fn)
}

// ParseAll parses body like Parse and returns all its points, which the
// caller owns: convenient for small bodies (an MQTT message) and tests. On
// error it returns no points. It allocates the points, their tags and their
// fields in three arrays, sized by the validating pass.
func ParseAll(body []byte, prec Precision, now int64, lim Limits) ([]Point, error) {
	ps := parserPool.Get().(*Parser)
	defer parserPool.Put(ps)
	return ps.ParseAll(body, prec, now, lim)
}

var parserPool = sync.Pool{New: func() any { return new(Parser) }}

// Parser parses bodies, keeping its buffers and its table of interned
// strings from one body to the next. The zero Parser is ready to use. A
// Parser is not safe for concurrent use; Parse and ParseAll keep a pool of
// them.
type Parser struct {
	body    []byte
	lim     Limits
	prec    Precision
	unit    int64 // nanoseconds per unit of prec
	now     int64 // the time of points without timestamp
	deliver bool  // the pass that hands out points: strings are interned

	// What the last pass saw: points, and the tags and fields (before
	// removing duplicates) of all of them.
	nPoints, nTags, nFields int

	pt     Point
	tags   []Tag
	tagOff []int // where each tag of tags starts in body, while unsorted
	fields []Field
	esc    []byte  // unescaped names and strings of the current line
	order  []int32 // scratch for deduplicating many fields
	drop   []bool

	// names interns strings: bodies repeat the same measurements, keys
	// and tag values line after line, so after the first few lines a
	// point costs no allocation. Bounded so that a stream of unique
	// values cannot grow it without end: when full it starts over.
	names      map[string]string
	namesBytes int

	// recent holds the strings of the last lines of recentWays
	// measurements, by their position in the line; nstr counts the
	// strings of the current line, way is the set it uses.
	recent       [recentWays][recentLen]string
	nstr         int
	way, nextWay int
}

// Bounds of the intern table, and the longest string interned; longer
// string values are unlikely to repeat.
const (
	internMaxEntries = 1 << 13
	internMaxBytes   = 1 << 18
	internMaxLen     = 64
	recentWays       = 8
	recentLen        = 32
)

// Parse is the package function Parse, using ps's buffers.
func (ps *Parser) Parse(body []byte, prec Precision, now int64, lim Limits, fn func(*Point) error) error {
	if err := ps.start(body, prec, now, lim); err != nil {
		return err
	}
	defer ps.finish()
	ps.deliver = false
	if err := ps.run(nil); err != nil {
		return err
	}
	if fn == nil {
		return nil
	}
	ps.deliver = true
	return ps.run(fn)
}

// ParseAll is the package function ParseAll, using ps's buffers.
func (ps *Parser) ParseAll(body []byte, prec Precision, now int64, lim Limits) ([]Point, error) {
	if err := ps.start(body, prec, now, lim); err != nil {
		return nil, err
	}
	defer ps.finish()
	ps.deliver = false
	if err := ps.run(nil); err != nil {
		return nil, err
	}
	// The first pass counted the points, tags and fields, so three arrays
	// hold them all, and each point's slices are capped so that appending
	// to one cannot overwrite the next.
	pts := make([]Point, 0, ps.nPoints)
	tags := make([]Tag, 0, ps.nTags)
	fields := make([]Field, 0, ps.nFields)
	ps.deliver = true
	err := ps.run(func(p *Point) error {
		q := Point{Measurement: p.Measurement, Time: p.Time, HasTime: p.HasTime}
		if len(p.Tags) > 0 {
			tags = append(tags, p.Tags...)
			q.Tags = tags[len(tags)-len(p.Tags) : len(tags) : len(tags)]
		}
		fields = append(fields, p.Fields...)
		q.Fields = fields[len(fields)-len(p.Fields) : len(fields) : len(fields)]
		pts = append(pts, q)
		return nil
	})
	if err != nil { // cannot happen: the first pass accepted the body
		return nil, err
	}
	return pts, nil
}

func (ps *Parser) start(body []byte, prec Precision, now int64, lim Limits) error {
	if err := prec.check(); err != nil {
		return err
	}
	if err := lim.Validate(); err != nil {
		return err
	}
	ps.body = body
	ps.lim = lim.withDefaults()
	ps.prec = prec
	ps.unit, _ = prec.unit()
	// Truncate towards the past, as time.Time.Truncate does.
	t := now / ps.unit * ps.unit
	if t > now {
		t -= ps.unit
	}
	ps.now = t
	if ps.names == nil {
		ps.names = make(map[string]string)
	}
	return nil
}

// finish drops the references into the body, so that a pooled Parser does
// not keep it alive.
func (ps *Parser) finish() {
	ps.body = nil
	clear(ps.tags[:cap(ps.tags)])
	clear(ps.fields[:cap(ps.fields)])
	ps.pt = Point{}
}

// run parses the body, calling fn (if not nil) for each point.
func (ps *Parser) run(fn func(*Point) error) error {
	b := ps.body
	n := len(b)
	ps.nPoints, ps.nTags, ps.nFields = 0, 0, 0
	for i := 0; i < n; {
		start := i
		for i < n && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
		if i == n {
			break
		}
		switch b[i] {
		case '\n':
			i++
			continue
		case '\r':
			if i+1 == n || b[i+1] == '\n' {
				i += 2
				continue
			}
		case '#':
			if k := bytes.IndexByte(b[i:], '\n'); k >= 0 {
				i += k + 1
			} else {
				i = n
			}
			continue
		}
		if ps.nPoints == ps.lim.MaxPoints {
			return ps.limitErr(i, "more than MaxPoints (%d) points in the body", ps.lim.MaxPoints)
		}
		ps.nPoints++
		next, err := ps.point(start, i)
		if err != nil {
			return err
		}
		i = next
		ps.nTags += len(ps.pt.Tags)
		ps.nFields += len(ps.pt.Fields)
		if fn != nil {
			if err := fn(&ps.pt); err != nil {
				return err
			}
		}
	}
	return nil
}

// Byte classes of the name scanner.
const (
	clsPlain uint8 = iota // part of the name
	clsSep                // ends the name unless escaped
	clsEsc                // a backslash
	clsCtl                // a control byte; ends the name (a line end) or is an error
	clsHigh               // part of a multi-byte UTF-8 sequence, to be validated
)

// measClass and keyClass classify bytes in a measurement and in tag keys,
// tag values and field keys.
var measClass, keyClass = classTables()

func classTables() (meas, key [256]uint8) {
	for c := range 256 {
		var k uint8
		switch {
		case c < 0x20 || c == 0x7f:
			k = clsCtl
		case c >= 0x80:
			k = clsHigh
		case c == '\\':
			k = clsEsc
		case c == ',' || c == ' ':
			k = clsSep
		}
		meas[c], key[c] = k, k
	}
	key['='] = clsSep
	return meas, key
}

// scanName scans the name that starts at b[i] up to the first unescaped
// separator or control byte of tbl, or the end of b. It returns the end,
// the number of escapes in the name and whether it has bytes ≥ 0x80.
func scanName(b []byte, i int, tbl *[256]uint8) (end, nesc int, high bool) {
	for {
		for i < len(b) && tbl[b[i]] == clsPlain {
			i++
		}
		if i == len(b) {
			return i, nesc, high
		}
		switch tbl[b[i]] {
		case clsEsc:
			if i+1 < len(b) && tbl[b[i+1]] == clsSep {
				nesc++
				i++
			}
		case clsHigh:
			high = true
		default:
			return i, nesc, high
		}
		i++
	}
}

// point parses the point whose line starts at lineStart and whose text
// starts at i, into ps.pt. It returns the index after the line end.
func (ps *Parser) point(lineStart, i int) (int, error) {
	b := ps.body
	n := len(b)
	lim := &ps.lim
	ps.esc = ps.esc[:0]
	ps.nstr = 0
	tags, tagOff := ps.tags[:0], ps.tagOff[:0]
	fields := ps.fields[:0]
	p := &ps.pt

	// Measurement.
	j, nesc, high := scanName(b, i, &measClass)
	if err := ps.nameEnd(j, &measClass, part{kind: inMeasurement}); err != nil {
		return 0, err
	}
	if j == i {
		return 0, ps.syntaxErr(i, "measurement: empty")
	}
	if err := ps.checkName(i, j, nesc, high, part{kind: inMeasurement}); err != nil {
		return 0, err
	}
	p.Measurement = ps.name(b[i:j], nesc, &measClass)
	i = j

	// Tags.
	for i < n && b[i] == ',' {
		i++
		j, nesc, high = scanName(b, i, &keyClass)
		if err := ps.nameEnd(j, &keyClass, part{kind: inTagKey}); err != nil {
			return 0, err
		}
		if j == i {
			return 0, ps.syntaxErr(i, "tag key: empty")
		}
		if j == n || b[j] != '=' {
			return 0, ps.syntaxErr(j, "tag key %s: missing '='", quote(b[i:j]))
		}
		if err := ps.checkName(i, j, nesc, high, part{kind: inTagKey}); err != nil {
			return 0, err
		}
		if len(tags) == lim.MaxTags {
			return 0, ps.limitErr(i, "more than MaxTags (%d) tags", lim.MaxTags)
		}
		keyStart := i
		key := ps.name(b[i:j], nesc, &keyClass)
		i = j + 1
		j, nesc, high = scanName(b, i, &keyClass)
		what := part{inTagValue, key}
		if err := ps.nameEnd(j, &keyClass, what); err != nil {
			return 0, err
		}
		if j < n && b[j] == '=' {
			return 0, ps.syntaxErr(j, "%s: unescaped '='", what)
		}
		if j == i {
			return 0, ps.syntaxErr(i, "%s: empty", what)
		}
		if err := ps.checkName(i, j, nesc, high, what); err != nil {
			return 0, err
		}
		tags = append(tags, Tag{Key: key, Value: ps.name(b[i:j], nesc, &keyClass)})
		tagOff = append(tagOff, keyStart)
		i = j
	}
	ps.tags, ps.tagOff = tags, tagOff

	// The space before the fields.
	if i < n && b[i] == ' ' {
		for i < n && b[i] == ' ' {
			i++
		}
	} else if !ps.eol(i) {
		return 0, ps.syntaxErr(i, "unexpected %s after the tags", quoteByte(b[i]))
	}
	if ps.eol(i) {
		return 0, ps.syntaxErr(i, "missing fields")
	}

	// Fields.
	for {
		j, nesc, high = scanName(b, i, &keyClass)
		if err := ps.nameEnd(j, &keyClass, part{kind: inFieldKey}); err != nil {
			return 0, err
		}
		if j == i {
			return 0, ps.syntaxErr(i, "field key: empty")
		}
		if j == n || b[j] != '=' {
			return 0, ps.syntaxErr(j, "field key %s: missing '='", quote(b[i:j]))
		}
		if err := ps.checkName(i, j, nesc, high, part{kind: inFieldKey}); err != nil {
			return 0, err
		}
		if len(fields) == lim.MaxFields {
			return 0, ps.limitErr(i, "more than MaxFields (%d) fields", lim.MaxFields)
		}
		fields = append(fields, Field{Key: ps.name(b[i:j], nesc, &keyClass)})
		f := &fields[len(fields)-1]
		i = j + 1
		var err error
		if i, err = ps.value(i, f); err != nil {
			ps.fields = fields
			return 0, err
		}
		if i < n && b[i] == ',' {
			i++
			continue
		}
		break
	}
	ps.fields = fields

	// Timestamp.
	p.Time, p.HasTime = ps.now, false
	if i < n && b[i] == ' ' {
		for i < n && b[i] == ' ' {
			i++
		}
		if !ps.eol(i) {
			t, end, err := ps.timestamp(i)
			if err != nil {
				return 0, err
			}
			j = end
			p.Time, p.HasTime = t, true
			for i = j; i < n && b[i] == ' '; i++ {
			}
			if !ps.eol(i) {
				return 0, ps.syntaxErr(i, "unexpected %s after the timestamp", quoteByte(b[i]))
			}
		}
	} else if !ps.eol(i) {
		return 0, ps.syntaxErr(i, "unexpected %s after field %s", quoteByte(b[i]), quoteString(fields[len(fields)-1].Key))
	}

	// i is at the line end.
	if i-lineStart > lim.MaxLineBytes {
		return 0, ps.limitErr(lineStart+lim.MaxLineBytes, "line longer than MaxLineBytes (%d bytes)", lim.MaxLineBytes)
	}
	if err := ps.sortTags(); err != nil {
		return 0, err
	}
	p.Tags = ps.tags
	if ps.deliver {
		ps.dedupFields()
	}
	p.Fields = ps.fields
	switch {
	case i == n:
		return n, nil
	case b[i] == '\r' && i+1 < n:
		return i + 2, nil
	}
	return i + 1, nil
}

// eol reports whether b[i] starts a line end (or i is the end of the body).
func (ps *Parser) eol(i int) bool {
	b := ps.body
	if i >= len(b) {
		return true
	}
	switch b[i] {
	case '\n':
		return true
	case '\r':
		return i+1 == len(b) || b[i+1] == '\n'
	}
	return false
}

// nameEnd checks the byte that ended a name of what: a control byte there
// must be a line end.
func (ps *Parser) nameEnd(j int, tbl *[256]uint8, what part) error {
	if j < len(ps.body) && tbl[ps.body[j]] == clsCtl && !ps.eol(j) {
		return ps.syntaxErr(j, "%s: invalid character %s", what, quoteByte(ps.body[j]))
	}
	return nil
}

// checkName checks the name of what in body[i:j], which has nesc escapes:
// its length and its UTF-8.
func (ps *Parser) checkName(i, j, nesc int, high bool, what part) error {
	if l := j - i - nesc; l > ps.lim.MaxKeyBytes {
		return ps.limitErr(i, "%s: %d bytes, more than MaxKeyBytes (%d)", what, l, ps.lim.MaxKeyBytes)
	}
	if high && !utf8.Valid(ps.body[i:j]) {
		return ps.syntaxErr(i+invalidUTF8At(ps.body[i:j]), "%s: invalid UTF-8", what)
	}
	return nil
}

// value parses the field value at body[i] into f and returns its end.
func (ps *Parser) value(i int, f *Field) (int, error) {
	b := ps.body
	n := len(b)
	if i == n || isValueEnd(b[i]) {
		return 0, ps.syntaxErr(i, "%s: missing", part{inFieldValue, f.Key})
	}
	var j int
	switch c := b[i]; {
	case c == '"':
		return ps.stringValue(i, f)
	case c == '-' || c == '.' || isDigit(c):
		var e numErr
		if j, e = scanNumber(b, i, f); e != numOK {
			return 0, ps.numberErr(i, f.Key, e)
		}
	case c == 't' || c == 'T' || c == 'f' || c == 'F':
		for j = i + 1; j < n && !isValueEnd(b[j]); j++ {
		}
		f.Kind = KindBool
		switch string(b[i:j]) {
		case "t", "T", "true", "True", "TRUE":
			f.Bool = true
		case "f", "F", "false", "False", "FALSE":
		default:
			return 0, ps.syntaxErr(i, "%s: invalid boolean %s", part{inFieldValue, f.Key}, quote(b[i:j]))
		}
	default:
		for j = i + 1; j < n && !isValueEnd(b[j]); j++ {
		}
		return 0, ps.syntaxErr(i, "%s: invalid value %s (strings need double quotes)", part{inFieldValue, f.Key}, quote(b[i:j]))
	}
	if j < n && b[j] == '\r' && !ps.eol(j) {
		return 0, ps.syntaxErr(j, "%s: invalid character %s", part{inFieldValue, f.Key}, quoteByte(b[j]))
	}
	return j, nil
}

// numberErr returns the error e of the number value of field key at
// body[i].
func (ps *Parser) numberErr(i int, key string, e numErr) error {
	b := ps.body
	j := i
	for j < len(b) && !isValueEnd(b[j]) {
		j++
	}
	tok := b[i:j]
	kind := KindFloat
	switch tok[len(tok)-1] {
	case 'i':
		kind = KindInt
	case 'u':
		kind = KindUint
	}
	if e == numRange {
		return ps.syntaxErr(i, "%s: %s out of range %s", part{inFieldValue, key}, numName(kind), quote(tok))
	}
	return ps.syntaxErr(i, "%s: invalid %s %s", part{inFieldValue, key}, numName(kind), quote(tok))
}

func numName(k Kind) string {
	switch k {
	case KindInt:
		return "integer"
	case KindUint:
		return "unsigned integer"
	}
	return "number"
}

// stringValue parses the string value whose opening quote is at body[i].
func (ps *Parser) stringValue(i int, f *Field) (int, error) {
	b := ps.body
	what := part{inFieldValue, f.Key}
	open := i
	i++
	// A quote ends the string unless an odd run of backslashes precedes
	// it: backslashes pair up as escaped backslashes from the left.
	end := i
	for {
		k := bytes.IndexByte(b[end:], '"')
		if k < 0 {
			return 0, ps.syntaxErr(open, "%s: missing closing quote", what)
		}
		end += k
		run := 0
		for end-run-1 >= i && b[end-run-1] == '\\' {
			run++
		}
		if run%2 == 0 {
			break
		}
		end++
	}
	raw := b[i:end]
	if !utf8.Valid(raw) {
		return 0, ps.syntaxErr(i+invalidUTF8At(raw), "%s: invalid UTF-8", what)
	}
	f.Kind = KindString
	if bytes.IndexByte(raw, '\\') >= 0 {
		start := len(ps.esc)
		for k := 0; k < len(raw); k++ {
			c := raw[k]
			if c == '\\' && k+1 < len(raw) && (raw[k+1] == '\\' || raw[k+1] == '"') {
				k++
				c = raw[k]
			}
			ps.esc = append(ps.esc, c)
		}
		raw = ps.esc[start:]
	}
	f.Str = ps.str(raw)
	end++ // the closing quote
	if !ps.eol(end) && b[end] != ',' && b[end] != ' ' {
		return 0, ps.syntaxErr(end, "%s: unexpected %s after the closing quote", what, quoteByte(b[end]))
	}
	return end, nil
}

// timestamp parses the timestamp at body[i] and returns it in nanoseconds
// and its end.
func (ps *Parser) timestamp(i int) (int64, int, error) {
	b := ps.body
	n := len(b)
	j := i
	neg := b[j] == '-'
	if neg {
		j++
	}
	start := j
	var v uint64
	for ; j < n && isDigit(b[j]); j++ {
		v = v*10 + uint64(b[j]-'0') // 19 digits cannot overflow
	}
	if j == start || j < n && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' {
		for j < n && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		return 0, 0, ps.syntaxErr(i, "timestamp: invalid %s", quote(b[i:j]))
	}
	if j-start > 19 {
		var e numErr
		if v, e = parseUint(b[start:j]); e != numOK {
			return 0, 0, ps.syntaxErr(i, "timestamp: out of range %s", quote(b[i:j]))
		}
	}
	var t int64
	switch {
	case neg && v <= 1<<63:
		t = int64(-v)
	case !neg && v <= math.MaxInt64:
		t = int64(v)
	default:
		return 0, 0, ps.syntaxErr(i, "timestamp: out of range %s", quote(b[i:j]))
	}
	u := ps.unit
	if t > maxTime/u || t < minTime/u {
		return 0, 0, ps.syntaxErr(i, "timestamp: out of range %s (in %v)", quote(b[i:j]), ps.prec)
	}
	return t * u, j, nil
}

// sortTags sorts ps.tags by key and rejects a key given twice.
func (ps *Parser) sortTags() error {
	tags, off := ps.tags, ps.tagOff
	if len(tags) < 2 {
		return nil
	}
	sorted := true
	for k := 1; k < len(tags); k++ {
		if tags[k-1].Key >= tags[k].Key {
			sorted = false
			break
		}
	}
	if sorted {
		return nil
	}
	if len(tags) <= 12 { // insertion sort: lines have few tags
		for k := 1; k < len(tags); k++ {
			for m := k; m > 0 && tags[m].Key < tags[m-1].Key; m-- {
				tags[m], tags[m-1] = tags[m-1], tags[m]
				off[m], off[m-1] = off[m-1], off[m]
			}
		}
	} else {
		sort.Sort((*tagSorter)(ps))
	}
	for k := 1; k < len(tags); k++ {
		if tags[k-1].Key == tags[k].Key {
			return ps.syntaxErr(max(off[k-1], off[k]), "tag key %s: duplicate", quoteString(tags[k].Key))
		}
	}
	return nil
}

// tagSorter sorts a Parser's tags and their offsets together.
type tagSorter Parser

func (s *tagSorter) Len() int           { return len(s.tags) }
func (s *tagSorter) Less(i, j int) bool { return s.tags[i].Key < s.tags[j].Key }
func (s *tagSorter) Swap(i, j int) {
	s.tags[i], s.tags[j] = s.tags[j], s.tags[i]
	s.tagOff[i], s.tagOff[j] = s.tagOff[j], s.tagOff[i]
}

// dedupFields keeps the last field of each key, in the order of the line.
func (ps *Parser) dedupFields() {
	fields := ps.fields
	n := len(fields)
	if n < 2 {
		return
	}
	w := 0
	if n <= 16 {
		for r := range n {
			dup := false
			for k := r + 1; k < n; k++ {
				if fields[k].Key == fields[r].Key {
					dup = true
					break
				}
			}
			if !dup {
				if w != r {
					fields[w] = fields[r]
				}
				w++
			}
		}
	} else {
		order := ps.order[:0]
		for k := range n {
			order = append(order, int32(k))
		}
		slices.SortFunc(order, func(a, b int32) int {
			return cmp.Or(strings.Compare(fields[a].Key, fields[b].Key), cmp.Compare(a, b))
		})
		drop := slices.Grow(ps.drop[:0], n)[:n]
		clear(drop)
		dups := false
		for k := 1; k < n; k++ {
			if fields[order[k-1]].Key == fields[order[k]].Key {
				drop[order[k-1]] = true
				dups = true
			}
		}
		ps.order, ps.drop = order, drop
		if !dups {
			return
		}
		for r := range n {
			if !drop[r] {
				fields[w] = fields[r]
				w++
			}
		}
	}
	clear(fields[w:])
	ps.fields = fields[:w]
}

// name returns the name in raw, which has nesc escapes of tbl.
func (ps *Parser) name(raw []byte, nesc int, tbl *[256]uint8) string {
	if nesc > 0 {
		start := len(ps.esc)
		for k := 0; k < len(raw); k++ {
			c := raw[k]
			if c == '\\' && k+1 < len(raw) && tbl[raw[k+1]] == clsSep {
				k++
				c = raw[k]
			}
			ps.esc = append(ps.esc, c)
		}
		raw = ps.esc[start:]
	}
	return ps.str(raw)
}

// str returns b as a string. In the validating pass the string aliases b
// (the body or ps.esc, neither of which changes while the point is
// parsed) and is dropped before Parse returns; the delivering pass interns
// a copy.
func (ps *Parser) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if !ps.deliver {
		return unsafe.String(unsafe.SliceData(b), len(b))
	}
	// The k-th string of a line is most often the k-th string of the
	// last line of the same measurement: a comparison is cheaper than a
	// map lookup. The measurement (k = 0) picks the set of recent strings.
	k := ps.nstr
	ps.nstr++
	if k == 0 {
		for w := range ps.recent {
			if r := ps.recent[w][0]; r == string(b) {
				ps.way = w
				return r
			}
		}
		ps.way = ps.nextWay
		ps.nextWay = (ps.nextWay + 1) % recentWays
		s := ps.intern(b)
		ps.recent[ps.way][0] = s
		return s
	}
	if k < recentLen {
		r := &ps.recent[ps.way][k]
		if *r == string(b) {
			return *r
		}
		*r = ps.intern(b)
		return *r
	}
	return ps.intern(b)
}

// intern returns b as a string from the intern table.
func (ps *Parser) intern(b []byte) string {
	if len(b) > internMaxLen {
		return string(b)
	}
	if s, ok := ps.names[string(b)]; ok {
		return s
	}
	if len(ps.names) >= internMaxEntries || ps.namesBytes >= internMaxBytes {
		clear(ps.names)
		ps.namesBytes = 0
	}
	s := string(b)
	ps.names[s] = s
	ps.namesBytes += len(s)
	return s
}

// syntaxErr returns a *SyntaxError at body[off].
func (ps *Parser) syntaxErr(off int, format string, args ...any) error {
	return ps.newErr(off, ErrSyntax, format, args...)
}

// limitErr returns a *SyntaxError at body[off] wrapping ErrLimit.
func (ps *Parser) limitErr(off int, format string, args ...any) error {
	return ps.newErr(off, ErrLimit, format, args...)
}

func (ps *Parser) newErr(off int, kind error, format string, args ...any) error {
	b := ps.body[:min(off, len(ps.body))]
	return &SyntaxError{
		Line: 1 + bytes.Count(b, []byte{'\n'}),
		Col:  len(b) - bytes.LastIndexByte(b, '\n'),
		Msg:  fmt.Sprintf(format, args...),
		Err:  kind,
	}
}

// part names the part of a line that a problem is in, for error messages.
type part struct {
	kind partKind
	key  string // the tag key of a tag value, the field key of a field value
}

type partKind uint8

const (
	inMeasurement partKind = iota
	inTagKey
	inTagValue
	inFieldKey
	inFieldValue
)

func (p part) String() string {
	switch p.kind {
	case inTagKey:
		return "tag key"
	case inTagValue:
		return "tag " + quoteString(p.key) + " value"
	case inFieldKey:
		return "field key"
	case inFieldValue:
		return "field " + quoteString(p.key) + " value"
	}
	return "measurement"
}

// invalidUTF8At returns the offset of the first invalid UTF-8 in b.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return 0
}

// quote returns a token for an error message: quoted, and cut short when
// long.
func quote(b []byte) string {
	const maxLen = 64
	if len(b) > maxLen {
		return fmt.Sprintf("%q...", b[:maxLen])
	}
	return fmt.Sprintf("%q", b)
}

func quoteString(s string) string { return quote(unsafe.Slice(unsafe.StringData(s), len(s))) }

func quoteByte(c byte) string { return fmt.Sprintf("%q", rune(c)) }
