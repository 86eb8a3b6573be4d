package sensors

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// maxAttrBytes bounds a sysfs attribute read: the kernel never returns
// more than a page from one, so anything longer is not sysfs.
const maxAttrBytes = 4096

// readAttr returns the content of the small file at path, trimmed of
// surrounding white space.
func readAttr(path string) (string, error) {
	b, err := readLimited(path, maxAttrBytes)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// readLimited returns the content of the file at path, or an error if it
// holds more than limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", path, errTooLarge, limit)
	}
	return b, nil
}

// readInt returns the integer in the sysfs attribute at path.
func readInt(path string) (int64, error) {
	s, err := readAttr(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w: not an integer: %q", path, errSyntax, truncate(s))
	}
	return n, nil
}

// numbered is a directory whose name is a prefix and a number, such as
// thermal_zone3 or hwmon12.
type numbered struct {
	n    int
	path string
}

// listNumbered returns the entries of dir named prefix and a decimal
// number, ordered by number. Entries may be symbolic links, as they are in
// /sys/class. A missing dir has no entries.
func listNumbered(dir, prefix string) ([]numbered, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var list []numbered
	for _, e := range entries {
		digits, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		n, err := strconv.Atoi(digits)
		if err != nil || n < 0 {
			continue
		}
		list = append(list, numbered{n, filepath.Join(dir, e.Name())})
	}
	slices.SortFunc(list, func(a, b numbered) int { return cmp.Compare(a.n, b.n) })
	return list, nil
}

// sanitize turns a name from the kernel (a zone type, a chip name, a
// channel label such as "Package id 0") into one part of a sensor name:
// lower case letters, digits, '_' and '-', every other run of bytes
// becoming one '_'. It returns "" if nothing is left.
func sanitize(s string) string {
	var b strings.Builder
	pending := false
	for i := range len(s) {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if !wordByte(c) {
			pending = true
			continue
		}
		if pending && b.Len() > 0 {
			b.WriteByte('_')
		}
		pending = false
		b.WriteByte(c)
		if b.Len() >= 63 {
			break
		}
	}
	return strings.Trim(b.String(), "_-")
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "…"
}

// joinName joins the non-empty parts of a sensor name with dots.
func joinName(parts ...string) string {
	return strings.Join(slices.DeleteFunc(parts, func(s string) bool { return s == "" }), ".")
}
