package session

import (
	"slices"
	"testing"

	"github.com/hyper-sched/hyper-sched/ipc"
)

// TestCallIO: argv gets the module's name first for a command or when
// arguments are given, and nothing otherwise; the Job form's lists come
// back whole.
func TestCallIO(t *testing.T) {
	list := func(xs ...string) []byte { return ipc.AppendList(nil, xs) }
	for _, tt := range []struct {
		name              string
		export            string
		args, env         []byte
		wantArgs, wantEnv []string
	}{
		{"function", "fib", nil, nil, nil, nil},
		{"command", "_start", nil, nil, []string{"m.wasm"}, nil},
		{"function with args", "f", list("a", ""), nil, []string{"m.wasm", "a", ""}, nil},
		{"command with env", "_start", list("x y"), list("A=1", "B="), []string{"m.wasm", "x y"}, []string{"A=1", "B="}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			io := CallIO([]byte("m.wasm"), []byte(tt.export), []byte("in"), tt.args, tt.env, 7)
			if !slices.Equal(io.Args, tt.wantArgs) || !slices.Equal(io.Env, tt.wantEnv) || string(io.Stdin) != "in" || io.OutputLimit != 7 {
				t.Errorf("got %+v, want args %q env %q", io, tt.wantArgs, tt.wantEnv)
			}
		})
	}
	if n := testing.AllocsPerRun(100, func() { CallIO([]byte("m"), []byte("f"), nil, nil, nil, 0) }); n != 0 {
		t.Errorf("a call without input: got %v allocs, want 0", n)
	}
}
