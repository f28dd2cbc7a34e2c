;; trap.wat: one export per trap kind the engine must report as a trap.
(module
  (memory 1)

  (func (export "unreachable")
    unreachable)

  ;; div0(n) = 100 / n: traps with "integer divide by zero" when n is 0.
  (func (export "div0") (param $n i32) (result i32)
    (i32.div_s (i32.const 100) (local.get $n)))

  ;; Loads 4 bytes at 65536, one past the end of the single page.
  (func (export "oob") (result i32)
    (i32.load (i32.const 65536)))

  ;; Recurses without bound (not a tail call: the add runs after the call
  ;; returns), so it ends in a stack overflow.
  (func $recurse (export "recurse") (param $n i32) (result i32)
    (i32.add
      (call $recurse (i32.add (local.get $n) (i32.const 1)))
      (i32.const 1))))
