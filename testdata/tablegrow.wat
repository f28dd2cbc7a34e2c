;; tablegrow.wat: table.grow against the engine's table limit
;; (engine.MaxTableElements, shared by all of an instance's tables).
(module
  ;; No declared maximum, as Go's wasip1 modules declare their table.
  (table $t 1 funcref)
  ;; A declared maximum far above the limit.
  (table $u 0 100000000 externref)

  ;; grow(n) grows $t by n elements and returns the old size, or -1 when the
  ;; grow is refused (that is not a trap). n is unsigned: grow(-16) asks for
  ;; 4294967280 elements, 32 GiB to wazero.
  (func (export "grow") (param $n i32) (result i32)
    (table.grow $t (ref.null func) (local.get $n)))

  ;; grow_other(n) is grow(n) on $u.
  (func (export "grow_other") (param $n i32) (result i32)
    (table.grow $u (ref.null extern) (local.get $n)))

  ;; size returns the size of $t.
  (func (export "size") (result i32)
    (table.size $t)))
