package supervisor

import (
	"testing"

	"github.com/hyper-sched/hyper-sched/sched"
)

// TestEstimateKeyInput: a call without input keeps the key calls had
// before input existed (stored calibrations stay valid); each input has
// its own key, and bytes cannot move between stdin, argv and environment
// unseen; a stored calibration finds its key again.
func TestEstimateKeyInput(t *testing.T) {
	m := &Module{Name: "m", SHA256: "0123456789abcdef0123456789abcdef"}
	base := func() *call {
		return &call{module: m, export: ExportInfo{Name: "_start"}, params: []uint64{10}, key: estimateKey(m, "_start", []uint64{10}, "")}
	}
	if got, want := base().key, "0123456789abcdef/_start/a"; got != want {
		t.Fatalf("key without input: got %q, want %q", got, want)
	}
	none := base()
	none.setInput(nil, nil, nil)
	if none.key != base().key {
		t.Errorf("setInput with no input: got key %q, want the old %q", none.key, base().key)
	}
	keys := map[string]string{}
	for name, in := range map[string]struct {
		stdin     []byte
		args, env []string
	}{
		"stdin ab":        {stdin: []byte("ab")},
		"stdin abc":       {stdin: []byte("abc")},
		"args ab":         {args: []string{"ab"}},
		"args a b":        {args: []string{"a", "b"}},
		"env A=b":         {env: []string{"A=b"}},
		"stdin a, args b": {stdin: []byte("a"), args: []string{"b"}},
		"empty arg":       {args: []string{""}},
	} {
		cl := base()
		cl.setInput(in.stdin, in.args, in.env)
		if other, dup := keys[cl.key]; dup {
			t.Errorf("%s and %s share the key %q", name, other, cl.key)
		}
		keys[cl.key] = name
		if cl.key == base().key {
			t.Errorf("%s: got the key of no input", name)
		}
		cal := Calibration{Export: "_start", Params: []string{"10"}, Input: cl.in.digest()}
		if got := estimateKeyFor(m, cal); got != cl.key {
			t.Errorf("%s: stored calibration's key %q, want %q", name, got, cl.key)
		}
	}
}

// TestShapeEstimate: a call with an input that was never measured uses its
// shape's estimate (any input of the same export and params); one whose
// own input was measured uses its own. Runs feed the shape always, and an
// input's own estimate only once it has one, so that inputs which never
// repeat do not fill the estimator.
func TestShapeEstimate(t *testing.T) {
	est, err := sched.NewEstimator(sched.EstimatorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s := &Supervisor{est: est}
	m := &Module{Name: "m", SHA256: "0123456789abcdef0123456789abcdef"}
	withInput := func(in string) *call {
		cl := &call{module: m, export: ExportInfo{Name: "_start"}}
		cl.setInput([]byte(in), nil, nil)
		return cl
	}
	a, b := withInput("a"), withInput("b")
	if a.shape == "" || a.shape != b.shape || a.key == b.key {
		t.Fatalf("got keys %q %q and shapes %q %q, want two keys, one shape", a.key, b.key, a.shape, b.shape)
	}
	none := &call{module: m, export: ExportInfo{Name: "_start"}}
	none.setInput(nil, nil, nil)
	if none.shape != "" || s.learnedKey(none) != none.key {
		t.Errorf("a call without input: got shape %q, learned key %q; want none, its own key", none.shape, s.learnedKey(none))
	}
	if got := s.learnedKey(a); got != a.shape {
		t.Errorf("nothing measured: got key %q, want the shape's", got)
	}
	// b's runs feed the shape, not b's own key: it has no estimate yet.
	tb := &task{key: b.key, shape: b.shape}
	for range 5 {
		s.observe(tb, 1000, false)
	}
	if ns, ok := est.Learned(s.learnedKey(a)); !ok || ns < 1000 {
		t.Errorf("after b's runs, a's estimate: got %d, %v; want the shape's, at least 1000", ns, ok)
	}
	if est.Runs(b.key) != 0 {
		t.Errorf("b's own key got %d runs, want none: it was never measured", est.Runs(b.key))
	}
	// A calibration of a makes a's own estimate, which a then uses, and
	// which its runs feed.
	est.Seed(a.key, 9000)
	if got := s.learnedKey(a); got != a.key {
		t.Errorf("a measured: got key %q, want a's own", got)
	}
	s.observe(&task{key: a.key, shape: a.shape}, 9500, false)
	if est.Runs(a.key) != 2 {
		t.Errorf("a's own key: got %d entries, want the seed and the run", est.Runs(a.key))
	}
	if got := s.learnedKey(b); got != b.shape {
		t.Errorf("b after a was measured: got %q, want the shape's", got)
	}
}
