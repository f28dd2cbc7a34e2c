package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// allBytes is every byte value, 0..255, four times over.
func allBytes() []byte {
	b := make([]byte, 1024)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestCallIOEcho(t *testing.T) {
	e := newEngine(t, Config{})
	m := compile(t, e, "echo.wasm")
	big := bytes.Repeat(allBytes(), 200) // 200 KiB: several 64 KiB reads
	for _, tc := range []struct {
		name, export string
		in           []byte
		exited       bool
	}{
		{"command empty", "_start", nil, true},
		{"command bytes", "_start", allBytes(), true},
		{"command big", "_start", big, true},
		{"function bytes", "echo", allBytes(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := m.CallIO(context.Background(), tc.export, nil, IO{Stdin: tc.in, OutputLimit: 1 << 20})
			if err != nil {
				t.Fatalf("%s: %v", tc.export, err)
			}
			if !bytes.Equal(res.Stdout, tc.in) {
				t.Errorf("got %d bytes of stdout, want the %d of stdin", len(res.Stdout), len(tc.in))
			}
			if res.StdoutBytes != int64(len(tc.in)) {
				t.Errorf("got StdoutBytes %d, want %d", res.StdoutBytes, len(tc.in))
			}
			if res.Exited != tc.exited || res.ExitCode != 0 {
				t.Errorf("got Exited %v code %d, want %v 0", res.Exited, res.ExitCode, tc.exited)
			}
		})
	}
}

func TestCallIOOutputLimit(t *testing.T) {
	e := newEngine(t, Config{})
	m := compile(t, e, "echo.wasm")
	in := bytes.Repeat(allBytes(), 10)
	res, err := m.CallIO(context.Background(), "_start", nil, IO{Stdin: in, OutputLimit: 1000})
	if err != nil {
		t.Fatalf("_start: %v", err)
	}
	if !bytes.Equal(res.Stdout, in[:1000]) {
		t.Errorf("got %d bytes of stdout, want the first 1000 of stdin", len(res.Stdout))
	}
	if res.StdoutBytes != int64(len(in)) {
		t.Errorf("got StdoutBytes %d, want %d: every byte written is counted", res.StdoutBytes, len(in))
	}
}

func TestCallIOExit(t *testing.T) {
	e := newEngine(t, Config{})
	m := compile(t, e, "echo.wasm")
	res, err := m.CallIO(context.Background(), "exit3", nil, IO{})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Fatalf("exit3: got %v, want an ExitError with code 3", err)
	}
	if !res.Exited || res.ExitCode != 3 || string(res.Stderr) != "bye\n" {
		t.Errorf("exit3: got Exited %v code %d stderr %q, want true 3 \"bye\\n\"", res.Exited, res.ExitCode, res.Stderr)
	}
	res, err = m.CallIO(context.Background(), "trap", nil, IO{})
	var te *TrapError
	if !errors.As(err, &te) || res.Exited || string(res.Stderr) != "oops\n" {
		t.Errorf("trap: got %v, Exited %v, stderr %q; want a TrapError, not exited, \"oops\\n\"", err, res.Exited, res.Stderr)
	}
}

// TestCallIOGo runs a GOOS=wasip1 command with stdin, argv and environment.
func TestCallIOGo(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a 3 MiB Go module")
	}
	e := newEngine(t, Config{})
	m := compile(t, e, "gojson.wasm")
	io := IO{Stdin: []byte(`{"numbers":[1,2,3.5]}`), Args: []string{"gojson", "a", "b c"}, Env: []string{"GREETING=hello=world"}}
	res, err := m.CallIO(context.Background(), "_start", nil, io)
	if err != nil {
		t.Fatalf("_start: %v (stderr %q)", err, res.Stderr)
	}
	var got struct {
		Count    int
		Sum      float64
		Args     []string
		Greeting string
	}
	if err := json.Unmarshal(res.Stdout, &got); err != nil {
		t.Fatalf("stdout %q: %v", res.Stdout, err)
	}
	if got.Count != 3 || got.Sum != 6.5 || strings.Join(got.Args, "|") != "a|b c" || got.Greeting != "hello=world" {
		t.Errorf("got %+v, want count 3, sum 6.5, args [a b c], greeting hello=world", got)
	}
	if !res.Exited || res.ExitCode != 0 {
		t.Errorf("got Exited %v code %d, want true 0", res.Exited, res.ExitCode)
	}
	res, err = m.CallIO(context.Background(), "_start", nil, IO{Stdin: []byte(`{"exit":3}`)})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || !strings.Contains(string(res.Stderr), "exit 3") {
		t.Errorf("exit 3: got %v, stderr %q; want ExitError 3 and its line on stderr", err, res.Stderr)
	}
}

// TestCallIOC runs a wasm32-wasi C command.
func TestCallIOC(t *testing.T) {
	e := newEngine(t, Config{})
	m := compile(t, e, "cjson.wasm")
	in := `{"a":[1,-2,30],"b":"x"}`
	res, err := m.CallIO(context.Background(), "_start", nil, IO{Stdin: []byte(in), Args: []string{"cjson"}})
	if err != nil {
		t.Fatalf("_start: %v (stderr %q)", err, res.Stderr)
	}
	want := `{"bytes":23,"numbers":3,"sum":29,"args":0}` + "\n"
	if string(res.Stdout) != want {
		t.Errorf("got %q, want %q", res.Stdout, want)
	}
	res, err = m.CallIO(context.Background(), "_start", nil, IO{Stdin: []byte(in), Args: []string{"cjson", "3"}})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || !res.Exited || string(res.Stderr) != "cjson: exit 3\n" {
		t.Errorf("exit 3: got %v, Exited %v, stderr %q", err, res.Exited, res.Stderr)
	}
}
