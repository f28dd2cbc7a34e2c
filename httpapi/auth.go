package httpapi

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/hyper-sched/hyper-sched/apierr"
)

// requireToken wraps a mutating handler: with a token configured, the
// request must carry "Authorization: Bearer <token>". Reading endpoints and
// /call stay open: calling is what the service is for, changing what it
// runs is not.
func (h *handler) requireToken(next httprouter.Handle) httprouter.Handle {
	if h.o.Token == "" {
		return next
	}
	want := []byte(h.o.Token)
	return func(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
		got, ok := bearer(r.Header.Get("Authorization"))
		if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hyper-sched"`)
			writeError(w, errorf(apierr.Unauthorized,
				"%s %s needs the API token: send Authorization: Bearer <token>", r.Method, r.URL.Path))
			return
		}
		next(w, r, p)
	}
}

// bearer returns the token of an Authorization value "Bearer <token>".
// The scheme is case-insensitive (RFC 9110 §11.1) and followed by one or
// more spaces (RFC 6750 §2.1); net/http has trimmed the value's ends.
func bearer(auth string) (string, bool) {
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	return token, token != ""
}
