// Command gojson is a WASI command (GOOS=wasip1) for the byte paths: it
// reads a JSON object on stdin, {"numbers": [...], "exit": n}, and writes
// {"count", "sum", "args", "greeting"} on stdout, argv after the program
// name and $GREETING included. A non-zero "exit" writes a line on stderr
// and exits with that code; input that is not JSON exits 2.
package main

import (
	"encoding/json"
	"fmt"
	"os"
)

type in struct {
	Numbers []float64 `json:"numbers"`
	Exit    int       `json:"exit"`
}

type out struct {
	Count    int      `json:"count"`
	Sum      float64  `json:"sum"`
	Args     []string `json:"args"`
	Greeting string   `json:"greeting"`
}

func main() {
	var v in
	if err := json.NewDecoder(os.Stdin).Decode(&v); err != nil {
		fmt.Fprintln(os.Stderr, "gojson: read stdin:", err)
		os.Exit(2)
	}
	o := out{Count: len(v.Numbers), Args: []string{}, Greeting: os.Getenv("GREETING")}
	if len(os.Args) > 1 { // argv may be empty, without even a program name
		o.Args = os.Args[1:]
	}
	for _, x := range v.Numbers {
		o.Sum += x
	}
	json.NewEncoder(os.Stdout).Encode(o)
	if v.Exit != 0 {
		fmt.Fprintln(os.Stderr, "gojson: exit", v.Exit)
		os.Exit(v.Exit)
	}
}
