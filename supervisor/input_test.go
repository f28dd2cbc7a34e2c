package supervisor

import "testing"

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
