;; memfill.wat: linear memory grown a page at a time, every page written.
(module
  ;; No declared maximum, so the engine's MemoryLimitPages is the maximum.
  (memory 1)

  ;; fill(n) grows memory by one page n times, or until a grow is refused,
  ;; filling each new page, and returns the size in pages.
  (func (export "fill") (param $n i32) (result i32)
    (local $i i32)
    (local $old i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $old (memory.grow (i32.const 1)))
        (br_if $done (i32.eq (local.get $old) (i32.const -1)))
        (memory.fill (i32.mul (local.get $old) (i32.const 65536)) (i32.const 1) (i32.const 65536))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (memory.size)))
