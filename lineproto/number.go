package lineproto

import (
	"math"
	"strconv"
	"unsafe"
)

// numErr is what is wrong with a number token.
type numErr uint8

const (
	numOK numErr = iota
	numSyntax
	numRange
)

// pow10 holds the powers of ten that a float64 represents exactly.
var pow10 = [...]float64{
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
}

// scanNumber parses the number value at b[i:] into f and returns its end:
//
//	float    = [ "-" ] ( digits [ "." { digit } ] | "." digits ) [ ( "e" | "E" ) [ "+" | "-" ] digits ]
//	integer  = [ "-" ] digits "i"
//	unsigned = digits "u"
//
// followed by the end of b or one of ", \r\n". One scan both checks the
// syntax and computes the value. Checking the syntax here, rather than
// leaving it to strconv.ParseFloat, keeps out what ParseFloat also accepts
// ("nan", "inf", "0x1p3", "1_0").
func scanNumber(b []byte, i int, f *Field) (int, numErr) {
	n := len(b)
	j := i
	neg := j < n && b[j] == '-'
	if neg {
		j++
	}
	start := j
	// The decimal value is mant × 10^exp while mant has at most 19
	// significant digits (below 2^64); trunc records digits that did not
	// fit.
	var mant uint64
	nd, exp := 0, 0
	digits, trunc, frac, expo := false, false, false, false
	for ; j < n && isDigit(b[j]); j++ {
		digits = true
		switch d := uint64(b[j] - '0'); {
		case mant == 0 && d == 0:
		case nd < 19:
			mant = mant*10 + d
			nd++
		default:
			trunc = true
			exp++
		}
	}
	intEnd := j
	if j < n && b[j] == '.' {
		frac = true
		for j++; j < n && isDigit(b[j]); j++ {
			digits = true
			switch d := uint64(b[j] - '0'); {
			case mant == 0 && d == 0:
				exp--
			case nd < 19:
				mant = mant*10 + d
				nd++
				exp--
			default:
				trunc = true
			}
		}
	}
	if !digits {
		return 0, numSyntax
	}
	if j < n && (b[j] == 'e' || b[j] == 'E') {
		expo = true
		j++
		eneg := false
		if j < n && (b[j] == '+' || b[j] == '-') {
			eneg = b[j] == '-'
			j++
		}
		if j == n || !isDigit(b[j]) {
			return 0, numSyntax
		}
		e := 0
		for ; j < n && isDigit(b[j]); j++ {
			if e < 100_000 { // far beyond float64's range either way
				e = e*10 + int(b[j]-'0')
			}
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	kind := KindFloat
	end := j
	if j < n {
		switch b[j] {
		case 'i':
			kind = KindInt
			end++
		case 'u':
			kind = KindUint
			end++
		}
	}
	if end < n && !isValueEnd(b[end]) {
		return 0, numSyntax
	}
	f.Kind = kind
	switch kind {
	case KindInt:
		if frac || expo {
			return 0, numSyntax
		}
		if trunc {
			return 0, numRange // 20 or more significant digits
		}
		if neg {
			if mant > 1<<63 {
				return 0, numRange
			}
			f.Int = int64(-mant)
		} else {
			if mant > math.MaxInt64 {
				return 0, numRange
			}
			f.Int = int64(mant)
		}
		return end, numOK
	case KindUint:
		if frac || expo || neg {
			return 0, numSyntax
		}
		if trunc {
			var e numErr
			f.Uint, e = parseUint(b[start:intEnd])
			return end, e
		}
		f.Uint = mant
		return end, numOK
	}
	// Clinger's fast path: an integer below 2^53 and a power of ten up to
	// 1e22 are both exact float64s, so one multiplication or division
	// rounds correctly. It covers nearly all telemetry values.
	if !trunc && mant < 1<<53 && exp >= -22 && exp <= 22 {
		v := float64(mant)
		if exp < 0 {
			v /= pow10[-exp]
		} else {
			v *= pow10[exp]
		}
		if neg {
			v = -v
		}
		f.Float = v
		return end, numOK
	}
	// The token's syntax is a subset of ParseFloat's, so the only error
	// left is a value beyond float64 (underflow rounds to zero, no error).
	// The string aliases b without copying: ParseFloat does not retain it
	// (its errors hold a copy).
	tok := b[i:j]
	v, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(tok), len(tok)), 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, numRange
	}
	f.Float = v
	return end, numOK
}

// isValueEnd reports whether c ends a field value that is not a string.
func isValueEnd(c byte) bool { return c == ',' || c == ' ' || c == '\n' || c == '\r' }

// parseUint parses digits into a uint64.
func parseUint(s []byte) (uint64, numErr) {
	if len(s) == 0 {
		return 0, numSyntax
	}
	var v uint64
	for _, c := range s {
		if !isDigit(c) {
			return 0, numSyntax
		}
		v = v*10 + uint64(c-'0') // may wrap; checked below
	}
	// Up to 19 digits cannot overflow; longer numbers are checked again
	// (rarely: timestamps in ns have 19 digits).
	if len(s) > 19 {
		for len(s) > 1 && s[0] == '0' {
			s = s[1:]
		}
		if len(s) > 20 || len(s) == 20 && string(s) > "18446744073709551615" {
			return 0, numRange
		}
	}
	return v, numOK
}

func isDigit(c byte) bool { return c-'0' < 10 }
