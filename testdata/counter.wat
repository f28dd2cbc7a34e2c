;; counter.wat: state that must not survive from one call to the next. With a
;; fresh instance per call, both counters return 1 every time.
(module
  (memory 1)
  (global $n (mut i32) (i32.const 0))

  ;; incr increments a global and returns it.
  (func (export "incr") (result i32)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (global.get $n))

  ;; incr_mem increments the i32 at address 0 of memory and returns it.
  (func (export "incr_mem") (result i32)
    (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
    (i32.load (i32.const 0))))
