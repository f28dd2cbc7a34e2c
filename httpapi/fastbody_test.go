package httpapi

import (
	"encoding/json"
	"reflect"
	"testing"
)

// fastBodies are bodies decodeCallFast decodes (true) or leaves to
// encoding/json (false).
var fastBodies = []struct {
	body string
	fast bool
}{
	{`{"wasm_name":"fib.wasm","task_unique_name":"fibabc","export_func":"fib_r","param_type":"i32","params":["30"],"results_length":"1","expected_execution_time":"5","expected_deadline":"35"}`, true},
	{` { "wasm_name" : "m" ,"export_func":"f","params":[ 1, -2.5e+3 ,"x"],"param_type":["i32","F64" ],"expected_deadline":35,"deadline_at":"1764000000035","results_length":0,"capture_output":true,"allow_late":false }` + "\n", true},
	{`{"wasm_name":"m","export_func":"f","params":[]}`, true},
	{`{}`, true},
	{`{"wasm_name":"m","export_func":"noop","params":[],"results_length":"0"}`, true},
	{`{"wasm_name":"m","wasm_name":"n"}`, false},               // twice: encoding/json keeps the last
	{`{"WASM_NAME":"m"}`, false},                               // encoding/json matches regardless of case
	{`{"wasm_name":"m","other":1}`, false},                     // ignored by encoding/json
	{`{"wasm_name":"caf\u00e9"}`, false},                       // an escape
	{`{"wasm_name":"café"}`, false},                            // not ASCII
	{`{"wasm_name":null}`, false},                              //
	{`{"params":[["30"]]}`, false},                             // nested
	{`{"params":[01]}`, false},                                 // not a JSON number
	{`{"expected_deadline":1.}`, false},                        //
	{`{"expected_deadline":true}`, false},                      //
	{`{"capture_output":"true"}`, false},                       //
	{`{"wasm_name":"m",}`, false},                              //
	{`{"wasm_name":"m"} {}`, false},                            //
	{`{"wasm_name":"m","export_func":"f","input":"x"}`, false}, // input, args, env, then
	{`{"wasm_name":"m","export_func":"f","then":[{}]}`, false}, //
	{`{"wasm_name":"m"`, false},                                //
	{`[]`, false},                                              //
	{`{"expected_deadline":5x}`, false},                        //
	{`{"allow_late":truex}`, false},                            //
	{"{\"wasm_name\":\"a\tb\"}", false},                        // a control character
	{`{"params":"\"`, false},                                   //
}

func TestDecodeCallFast(t *testing.T) {
	for _, tt := range fastBodies {
		var got callBody
		if ok := decodeCallFast([]byte(tt.body), &got); ok != tt.fast {
			t.Errorf("%s: decodeCallFast reported %v, want %v", tt.body, ok, tt.fast)
			continue
		} else if !ok {
			continue
		}
		var want callBody
		if err := json.Unmarshal([]byte(tt.body), &want); err != nil {
			t.Errorf("%s: decoded fast, but encoding/json refuses it: %v", tt.body, err)
		} else if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n fast %+v\n json %+v", tt.body, got, want)
		}
	}
}

// FuzzDecodeCallFast: a body decodeCallFast decodes is one json.Unmarshal
// decodes to the same callBody.
func FuzzDecodeCallFast(f *testing.F) {
	for _, tt := range fastBodies {
		f.Add([]byte(tt.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var got callBody
		if !decodeCallFast(body, &got) {
			return
		}
		var want callBody
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatalf("decoded fast, but encoding/json refuses it: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("\n fast %+v\n json %+v", got, want)
		}
	})
}

func BenchmarkDecodeCall(b *testing.B) {
	body := []byte(`{"wasm_name":"fib.wasm","export_func":"noop","params":[],"results_length":"0"}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var cb callBody
			decodeCallFast(body, &cb)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var cb callBody
			json.Unmarshal(body, &cb)
		}
	})
}
