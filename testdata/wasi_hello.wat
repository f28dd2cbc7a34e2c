;; wasi_hello.wat: writes to stdout and stderr through WASI, with no _start.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit"
    (func $proc_exit (param i32)))

  (memory (export "memory") 1)

  ;; 0: iovec {buf = 16, len = 6}; 8: nwritten; 16: the text.
  (data (i32.const 0) "\10\00\00\00\06\00\00\00")
  (data (i32.const 16) "hello\n")

  ;; hello writes "hello\n" to stdout (fd 1).
  (func (export "hello")
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))

  ;; hello_err writes "hello\n" to stderr (fd 2).
  (func (export "hello_err")
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8))))

  ;; spam(n) writes "hello\n" n times to stdout: 6n bytes, for output bounds.
  (func (export "spam") (param $n i32)
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get $n)))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $l))))

  ;; quit(code) ends the instance with WASI proc_exit.
  (func (export "quit") (param i32)
    (call $proc_exit (local.get 0))))
