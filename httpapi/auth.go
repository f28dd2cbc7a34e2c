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
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hyper-sched"`)
			writeError(w, errorf(apierr.Unauthorized,
				"%s %s needs the API token: send Authorization: Bearer <token>", r.Method, r.URL.Path))
			return
		}
		next(w, r, p)
	}
}
