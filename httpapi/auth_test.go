package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/julienschmidt/httprouter"
)

// TestRequireToken checks the bearer check of the mutating endpoints. The
// scheme is case-insensitive (RFC 9110 §11.1, RFC 6750 §2.1): "bearer x"
// and "BEARER x" are the token x; anything else is a 401.
func TestRequireToken(t *testing.T) {
	h := &handler{o: Options{Token: "s3cret"}}
	ok := h.requireToken(func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		writeJSON(w, http.StatusOK, okAnswer{Status: "Success"})
	})
	for _, tt := range []struct {
		auth string
		want int
	}{
		{"Bearer s3cret", http.StatusOK},
		{"bearer s3cret", http.StatusOK},
		{"BEARER s3cret", http.StatusOK},
		{"bEaReR s3cret", http.StatusOK},
		{"Bearer  s3cret", http.StatusOK}, // 1*SP
		{"", http.StatusUnauthorized},
		{"Bearer", http.StatusUnauthorized},
		{"Bearer ", http.StatusUnauthorized},
		{"Bearer s3cre", http.StatusUnauthorized},
		{"Bearer s3cret2", http.StatusUnauthorized},
		{"Basic s3cret", http.StatusUnauthorized},
		{"Bearers3cret", http.StatusUnauthorized},
		{"s3cret", http.StatusUnauthorized},
	} {
		t.Run(tt.auth, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/register", nil)
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			w := httptest.NewRecorder()
			ok(w, r, nil)
			if w.Code != tt.want {
				t.Errorf("Authorization %q: got %d %s, want %d", tt.auth, w.Code, w.Body, tt.want)
			}
			if w.Code == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("Authorization %q: got a 401 without WWW-Authenticate", tt.auth)
			}
		})
	}
}
