package engine

import (
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// checkImports returns an *ImportError naming every import of c that the
// engine's runtime cannot satisfy, or nil. wasi holds the signatures of the
// WASI functions wazero provides.
//
// wazero's CompiledModule lists imported functions and memories but not
// imported tables, globals or tags, which would otherwise surface only at
// instantiation; those are read from the import section of bin directly.
func checkImports(c wazero.CompiledModule, bin []byte, wasi map[string]api.FunctionDefinition) error {
	e := &ImportError{}
	add := func(module, name, reason string) {
		e.Names = append(e.Names, module+"."+name)
		e.reasons = append(e.reasons, reason)
	}
	for _, f := range c.ImportedFunctions() {
		module, name, _ := f.Import()
		if module != wasi_snapshot_preview1.ModuleName {
			add(module, name, "")
			continue
		}
		want, ok := wasi[name]
		if !ok {
			add(module, name, "not a WASI preview1 function")
			continue
		}
		if !slices.Equal(f.ParamTypes(), want.ParamTypes()) || !slices.Equal(f.ResultTypes(), want.ResultTypes()) {
			add(module, name, "type "+signature(f)+", want "+signature(want))
		}
	}
	for _, m := range c.ImportedMemories() {
		module, name, _ := m.Import()
		add(module, name, "memory")
	}
	// Tables, globals and tags can never be satisfied: the only module the
	// runtime holds besides the guests is WASI, which exports functions only.
	// A section this parser cannot read was still accepted by wazero; its
	// imports then fail at instantiation, with wazero's message.
	others, _ := nonFuncMemImports(bin)
	for _, im := range others {
		add(im.module, im.name, im.kind)
	}
	if len(e.Names) == 0 {
		return nil
	}
	return e
}

// signature formats a function type like "(i32,i32)->i32".
func signature(f api.FunctionDefinition) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ",")
	}
	r := names(f.ResultTypes())
	if len(f.ResultTypes()) != 1 {
		r = "(" + r + ")"
	}
	return "(" + names(f.ParamTypes()) + ")->" + r
}

type importDesc struct{ module, name, kind string }

// nonFuncMemImports returns the table, global and tag imports of a module
// that wazero has already decoded and validated.
func nonFuncMemImports(bin []byte) ([]importDesc, error) {
	if len(bin) < 8 {
		return nil, errShort
	}
	r := scanner{b: bin, pos: 8} // after magic and version
	for r.left() > 0 {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		if id == 2 {
			return r.importKinds()
		}
		if err := r.skip(int(size)); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// importKinds reads an import section, returning its table, global and tag
// imports.
func (r *scanner) importKinds() ([]importDesc, error) {
	n, err := r.count("import count")
	if err != nil {
		return nil, err
	}
	var out []importDesc
	for range n {
		module, name, kind, err := r.importEntry()
		if err != nil {
			return nil, err
		}
		switch kind {
		case 0x01:
			out = append(out, importDesc{module, name, "table"})
		case 0x03:
			out = append(out, importDesc{module, name, "global"})
		case 0x04:
			out = append(out, importDesc{module, name, "tag"})
		}
	}
	return out, nil
}
