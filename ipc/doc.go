// Package ipc is the wire between hyper-sched's processes: the supervisor,
// benchd and one coreworker per CPU, and the control socket used by
// hyper-schedctl.
//
// Every message is a frame: a 4-byte big-endian length, then a msgpack body.
// The body is a two-element array [kind, payload]. Frames above the
// connection's cap are refused before anything is allocated for them, so a
// peer that sends garbage costs one closed connection, never a crash or an
// unbounded allocation. The first message each way is a Hello carrying
// Version. PROTOCOL.md beside this file has the frame diagram and the message
// table.
//
// The codec never logs; it returns errors. Conn.Read and Conn.Decode must be
// called from one goroutine; Conn.Write may be called from many.
package ipc
