;; echo.wat: a WASI command for the byte paths. _start copies stdin to
;; stdout, byte for byte, and exits 0; the other exports are ordinary
;; functions of the same module.
(module
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit"
    (func $proc_exit (param i32)))
  ;; 0: read iovec {1024, 65536}; 8: bytes read; 16: write iovec; 24: bytes
  ;; written; 32: "bye\n", 40: "oops\n"; 1024..: the 64 KiB buffer.
  (memory (export "memory") 2)
  (data (i32.const 0) "\00\04\00\00\00\00\01\00")
  (data (i32.const 32) "bye\n")
  (data (i32.const 40) "oops\n")

  ;; copy writes stdin to stdout until EOF or an error.
  (func $copy (local $n i32)
    (block $eof
      (loop $more
        (br_if $eof (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $n (i32.load (i32.const 8)))
        (br_if $eof (i32.eqz (local.get $n)))
        (i32.store (i32.const 16) (i32.const 1024))
        (i32.store (i32.const 20) (local.get $n))
        (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
        (br $more))))

  (func $say (param $fd i32) (param $at i32) (param $len i32)
    (i32.store (i32.const 16) (local.get $at))
    (i32.store (i32.const 20) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 24))))

  (func (export "_start")
    (call $copy)
    (call $proc_exit (i32.const 0)))
  ;; echo is the same copy as an ordinary function: it returns.
  (func (export "echo")
    (call $copy))
  ;; exit3 says bye on stderr and exits with code 3.
  (func (export "exit3")
    (call $say (i32.const 2) (i32.const 32) (i32.const 4))
    (call $proc_exit (i32.const 3)))
  ;; trap says oops on stderr and traps.
  (func (export "trap")
    (call $say (i32.const 2) (i32.const 40) (i32.const 5))
    unreachable)
  ;; noop does nothing: the baseline of the I/O cost figures.
  (func (export "noop"))
  ;; add returns a + b: a call with params and no input.
  (func (export "add") (param i32 i32) (result i32)
    (i32.add (local.get 0) (local.get 1))))
