;; loop.wat: work without end, and work of a chosen size.
(module
  ;; A loop that never ends and never calls: only killing the process stops it.
  (func (export "forever")
    (loop $l (br $l)))

  ;; spin(n) runs n iterations of a multiply-add and returns the accumulator,
  ;; so the work depends on n and cannot be folded away.
  (func (export "spin") (param $n i32) (result i32)
    (local $i i32)
    (local $acc i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $acc
          (i32.add (i32.mul (local.get $acc) (i32.const 31)) (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (local.get $acc)))
