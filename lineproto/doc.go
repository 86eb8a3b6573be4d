// Package lineproto parses and writes the InfluxDB line protocol, the write
// format of InfluxDB 1.x (/write) and 2.x (/api/v2/write) as Telegraf's
// influxdb and influxdb_v2 outputs send it. edged's HTTP write endpoints
// and its MQTT ingestion feed request bodies to Parse; AppendPoint writes
// points back, for tests and load generators.
//
// # Grammar
//
// A body is a sequence of lines ended by "\n" or "\r\n" (the last line
// needs no line end). Blank lines, and comment lines whose first byte
// after leading spaces or tabs is '#', are skipped. Every other line is a
// point:
//
//	point       = { " " | "\t" } measurement { "," tagkey "=" tagvalue }
//	              " " { " " } field { "," field }
//	              [ " " { " " } timestamp ] { " " } .
//	field       = fieldkey "=" value .
//	value       = float | integer | unsigned | boolean | string .
//	float       = [ "-" ] ( digits [ "." { digit } ] | "." digits )
//	              [ ( "e" | "E" ) [ "+" | "-" ] digits ] .
//	integer     = [ "-" ] digits "i" .
//	unsigned    = digits "u" .
//	boolean     = "t" | "T" | "true" | "True" | "TRUE"
//	            | "f" | "F" | "false" | "False" | "FALSE" .
//	string      = `"` { byte but `"` or `\` | `\"` | `\\` | `\` } `"` .
//	timestamp   = [ "-" ] digits .
//
// Names (the measurement, tag keys, tag values and field keys) are
// non-empty, valid UTF-8 and free of control characters (bytes below 0x20
// and 0x7f). In the measurement a backslash escapes a comma or a space; in
// tag keys, tag values and field keys it escapes a comma, a space or an
// equals sign. A backslash before any other byte is a literal backslash
// (so Windows paths such as C:\Temp pass unchanged, as Telegraf sends
// them), which also means a name cannot end in a backslash. An unescaped
// '=' in a tag value is an error.
//
// String values are double-quoted; inside them `\"` is a quote, `\\` a
// backslash and a backslash before any other byte is itself. They are
// valid UTF-8 and may hold any other byte, newlines included: a string
// with a newline makes its point span several physical lines, as in
// InfluxDB.
//
// Numbers are decimal only: "NaN", "Inf", hexadecimal floats, digit
// separators and a leading '+' are rejected, as are floats beyond the
// float64 range (1e309) and integers beyond int64 or uint64. Floats too
// small for float64 round to zero, as in InfluxDB.
//
// # Points
//
// Tags are sorted by key, as InfluxDB canonicalises them; a tag key given
// twice is an error. A field key given twice keeps its last value, as in
// InfluxDB, at the position of its last occurrence; the other fields keep
// the order of the line.
//
// A timestamp is an integer count of the write's Precision since the Unix
// epoch and is converted to nanoseconds; one that overflows int64
// nanoseconds is an error, never wrapped around. Negative timestamps
// (before 1970) are allowed, as in InfluxDB, within InfluxDB's range
// [-9223372036854775806, 9223372036854775806] ns, which leaves
// math.MinInt64, math.MinInt64+1 and math.MaxInt64 free as sentinels. A
// point without a timestamp gets the time the caller passes, truncated to
// the precision as InfluxDB does, and HasTime false.
//
// # Limits and errors
//
// Limits bounds what one body may hold: bytes per point line (the whole
// point, including newlines inside strings; comment lines are not
// counted), points per body, fields and tags per point, and bytes per
// measurement, tag key, tag value and field key (after unescaping).
// DefaultLimits gives 64 KiB, 100,000, 256, 64 and 256. The caller bounds
// the size of the body itself.
//
// Every problem with the body is a *SyntaxError naming the line, the
// column and what is wrong, for example
//
//	line 3: field "usage" value: invalid number "1.2.3"
//
// and wrapping ErrSyntax, or ErrLimit when a limit is exceeded.
//
// # All or nothing
//
// Parse validates the whole body before it delivers any point: when any
// line is bad it returns the first error without having called its
// callback, so a client retrying a rejected body never writes a point
// twice. (InfluxDB instead writes the good lines and rejects the bad
// ones.) The price is a second parsing pass, which keeps memory constant
// whatever the body size; see Parse and BenchmarkParse for the cost.
//
// # Concurrency and ownership
//
// Parse is safe for concurrent use; a Parser is not. The *Point handed to
// the callback, its Tags and its Fields are reused for the next point: the
// callback must not retain them after it returns (Point.Clone copies).
// The strings in a point are ordinary immutable strings and may be kept;
// the parser interns the names and short strings it sees, so that a body
// of repetitive lines allocates next to nothing.
package lineproto
