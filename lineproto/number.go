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

// parseFloat parses a float token:
//
//	[ "-" ] ( digits [ "." { digit } ] | "." digits ) [ ( "e" | "E" ) [ "+" | "-" ] digits ]
//
// Checking the syntax here, rather than leaving it to strconv.ParseFloat,
// keeps out what ParseFloat also accepts ("nan", "inf", "0x1p3", "1_0").
func parseFloat(s []byte) (float64, numErr) {
	i := 0
	neg := false
	if i < len(s) && s[i] == '-' {
		neg = true
		i++
	}
	// The decimal value is mant × 10^exp while mant has at most 19
	// significant digits; trunc records digits that did not fit.
	var mant uint64
	nd, exp := 0, 0
	digits, trunc := false, false
	for ; i < len(s) && isDigit(s[i]); i++ {
		digits = true
		switch d := uint64(s[i] - '0'); {
		case mant == 0 && d == 0:
		case nd < 19:
			mant = mant*10 + d
			nd++
		default:
			trunc = true
			exp++
		}
	}
	if i < len(s) && s[i] == '.' {
		i++
		for ; i < len(s) && isDigit(s[i]); i++ {
			digits = true
			switch d := uint64(s[i] - '0'); {
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
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		if i == len(s) {
			return 0, numSyntax
		}
		e := 0
		for ; i < len(s) && isDigit(s[i]); i++ {
			if e < 100_000 { // far beyond float64's range either way
				e = e*10 + int(s[i]-'0')
			}
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	if i != len(s) {
		return 0, numSyntax
	}
	// Clinger's fast path: an integer below 2^53 and a power of ten up to
	// 1e22 are both exact float64s, so one multiplication or division
	// rounds correctly. It covers nearly all telemetry values.
	if !trunc && mant < 1<<53 && exp >= -22 && exp <= 22 {
		f := float64(mant)
		if exp < 0 {
			f /= pow10[-exp]
		} else {
			f *= pow10[exp]
		}
		if neg {
			f = -f
		}
		return f, numOK
	}
	// The token's syntax is a subset of ParseFloat's, so the only error
	// left is a value beyond float64 (underflow rounds to zero, no error).
	// The string aliases s without copying: ParseFloat does not retain it
	// (its errors hold a copy).
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(s), len(s)), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, numRange
	}
	return f, numOK
}

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

// parseInt parses [ "-" ] digits into an int64.
func parseInt(s []byte) (int64, numErr) {
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	u, e := parseUint(s)
	if e != numOK {
		return 0, e
	}
	if neg {
		if u > 1<<63 {
			return 0, numRange
		}
		return int64(-u), numOK
	}
	if u > math.MaxInt64 {
		return 0, numRange
	}
	return int64(u), numOK
}

func isDigit(c byte) bool { return c-'0' < 10 }
