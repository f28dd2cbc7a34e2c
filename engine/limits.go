package engine

// Limits on what a module may declare. wazero accepts far more, and some of
// it costs memory in every instance (tables, globals, element and data
// segments) or compile time out of proportion to the module's size (types,
// locals, br_table targets, nesting). [Engine.Compile] refuses a module
// over any of them with an [ErrInvalid] error that names the limit, before
// wazero sees it. docs/RATIONALE.md ("Why does the engine refuse some
// modules wazero would accept?") gives the measurements behind each number.
//
// Where the WebAssembly JS API (the limits every browser enforces) is
// strict enough, its number is used; a tighter one is chosen only where
// wazero makes a module at the JS API's limit expensive.
const (
	// MaxTableElements bounds the elements of all of an instance's tables
	// together, and the elements of all element segments. A table's
	// declared maximum is lowered so that the maxima add up to at most this
	// (a table without a maximum, as Go's wasip1 modules declare theirs,
	// gets what is left), so table.grow past it returns -1, like
	// memory.grow past Config.MemoryLimitPages; a module whose minima
	// already add up to more is refused. wazero keeps 8 bytes per element.
	// A 3 MB Go module has 6,098; this is about four times what a Go module
	// of the largest upload (32 MiB) has.
	MaxTableElements = 1 << 18

	// MaxTables bounds the tables of a module (the JS API's limit).
	MaxTables = 100_000

	// MaxGlobals bounds the globals of a module. Each costs an instance
	// about 30 bytes; the JS API allows 1,000,000.
	MaxGlobals = 100_000

	// MaxDataSegments bounds the data segments of a module (the JS API's
	// limit).
	MaxDataSegments = 100_000

	// MaxTypes bounds the function types of a module. wazero spends about
	// 16 µs and 440 bytes compiling each; the JS API allows 1,000,000.
	MaxTypes = 100_000

	// MaxFunctions bounds the functions of a module, imported and defined
	// (the JS API's limit).
	MaxFunctions = 1_000_000

	// MaxFunctionSize bounds the bytes of one function body (the JS API's
	// limit).
	MaxFunctionSize = 7_654_321

	// MaxLocals bounds the locals of one function (the JS API's limit, also
	// V8's and wasmtime's).
	MaxLocals = 50_000

	// MaxModuleLocals bounds the locals of all functions of a module
	// together. Every local is zeroed by compiled code at every call, so
	// each costs compile time and code even if unused: 5,000 functions of
	// 50,000 locals, 50 KB of module, took wazero 58 s and 1.9 GiB.
	MaxModuleLocals = 1_000_000

	// MaxBrTableTargets bounds the targets of one br_table. wazero's cost
	// per target grows with the table: 16,384 targets took 0.2 s and 44 MiB
	// to compile, V8's limit of 65,520 took 1.3 s and 158 MiB (65 KB of
	// module). The widest in a 3 MB Go module has 895.
	MaxBrTableTargets = 16_384

	// MaxNesting bounds how deeply blocks, loops and ifs nest in one
	// function. wazero's compile time grows with its square: 10,000 levels
	// took 0.4 s, 30,000 took 6 s, 100,000 took 125 s. The deepest function
	// of a 3 MB Go module nests 550 deep.
	MaxNesting = 10_000
)
