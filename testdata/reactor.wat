;; reactor.wat: a WASI reactor. Its _initialize must run once per instance
;; before any other export (Go's -buildmode=c-shared and clang's
;; -mexec-model=reactor produce such modules).
(module
  (global $ready (mut i32) (i32.const 0))
  (func (export "_initialize")
    (global.set $ready (i32.const 42)))
  ;; ready returns 42 when _initialize ran, else 0.
  (func (export "ready") (result i32)
    (global.get $ready)))
