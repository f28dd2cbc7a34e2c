;; fib.wat: the seed's benchmark module and the simple typed exports the
;; engine and HTTP tests call. fib_r(30) = 832040, fib(32) = 2178309.
(module
  ;; Naive doubly recursive Fibonacci: fib_r(0) = 0, fib_r(1) = 1. Its running
  ;; time grows as ~1.6^n, which makes it the seed's calibratable workload.
  (func $fib_r (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else
        (i32.add
          (call $fib_r (i32.sub (local.get $n) (i32.const 1)))
          (call $fib_r (i32.sub (local.get $n) (i32.const 2)))))))

  ;; The seed's clients call both "fib_r" (/call) and "fib" (/test): one
  ;; function exported under both names.
  (export "fib_r" (func $fib_r))
  (export "fib" (func $fib_r))

  (func (export "noop"))

  (func (export "add") (param i32 i32) (result i32)
    (i32.add (local.get 0) (local.get 1)))

  (func (export "add64") (param i64 i64) (result i64)
    (i64.add (local.get 0) (local.get 1)))

  (func (export "mulf") (param f32 f32) (result f32)
    (f32.mul (local.get 0) (local.get 1)))

  (func (export "mulf64") (param f64 f64) (result f64)
    (f64.mul (local.get 0) (local.get 1))))
