package wasmval

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrInvalid is matched by errors.Is for every error this package returns
// because of bad input, so that the HTTP layer can map them all to one status
// (400 Error_Invalid_params) in one place. Its own text never appears in those
// errors' messages, which are meant for the client.
var ErrInvalid = errors.New("wasmval: invalid value")

// invalidError is a client-facing message that matches ErrInvalid.
type invalidError string

func (e invalidError) Error() string { return string(e) }

func (e invalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error {
	return invalidError(fmt.Sprintf(format, args...))
}

// prefix returns err with "p: " in front, keeping it an invalidError.
func prefix(p string, err error) error {
	return invalidError(p + ": " + err.Error())
}

// maxQuoted is how many bytes of a client's text an error message repeats:
// enough to recognise the value, not enough to echo a megabyte back.
const maxQuoted = 40

// quote returns s in Go quotes, cut to maxQuoted bytes with "…" after it.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:maxQuoted]) + "…"
}
