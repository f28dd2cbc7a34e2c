module github.com/hyper-sched/hyper-sched

go 1.26.8

require (
	github.com/julienschmidt/httprouter v1.3.0
	github.com/tetratelabs/wazero v1.12.0
	github.com/vmihailenco/msgpack/v5 v5.4.1
	golang.org/x/sys v0.50.0
)

require (
	github.com/stretchr/testify v1.8.4 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
)
