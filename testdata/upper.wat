;; upper.wat: two WASI commands that transform stdin into stdout, for
;; deadline chains (issue 16), where each stage's stdout is the next one's
;; stdin. _start writes stdin with ASCII a-z made upper case; mark writes
;; stdin with one "x" after it. Their order shows in the result:
;; "ab" | _start | mark = "ABx", "ab" | mark | _start = "ABX".
(module
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  ;; 0: read iovec {1024, 65536}; 8: bytes read; 16: write iovec; 24: bytes
  ;; written; 32: "x"; 1024..: the 64 KiB buffer.
  (memory (export "memory") 2)
  (data (i32.const 0) "\00\04\00\00\00\00\01\00")
  (data (i32.const 32) "x")

  (func $write (param $at i32) (param $len i32)
    (i32.store (i32.const 16) (local.get $at))
    (i32.store (i32.const 20) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24))))

  ;; copy writes stdin to stdout until EOF or an error, upper-casing a-z
  ;; if $up.
  (func $copy (param $up i32) (local $n i32) (local $i i32) (local $c i32)
    (block $eof
      (loop $more
        (br_if $eof (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $n (i32.load (i32.const 8)))
        (br_if $eof (i32.eqz (local.get $n)))
        (if (local.get $up)
          (then
            (local.set $i (i32.const 0))
            (block $done
              (loop $byte
                (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
                (local.set $c (i32.load8_u (i32.add (i32.const 1024) (local.get $i))))
                (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
                  (then (i32.store8 (i32.add (i32.const 1024) (local.get $i)) (i32.sub (local.get $c) (i32.const 32)))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $byte)))))
        (call $write (i32.const 1024) (local.get $n))
        (br $more))))

  (func (export "_start")
    (call $copy (i32.const 1)))
  (func (export "mark")
    (call $copy (i32.const 0))
    (call $write (i32.const 32) (i32.const 1))))
