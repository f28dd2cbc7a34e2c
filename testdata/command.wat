;; command.wat: a WASI command. The engine must not run _start at
;; instantiation; calling it explicitly writes "started\n" and exits with 0.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit"
    (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\10\00\00\00\08\00\00\00")
  (data (i32.const 16) "started\n")
  (func (export "_start")
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const 0)))
  ;; ping returns 7; it fails if _start already ran and exited the instance.
  (func (export "ping") (result i32)
    (i32.const 7)))
