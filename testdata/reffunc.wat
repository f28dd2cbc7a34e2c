;; reffunc.wat: ref.func in a function body, which wazero v1.12 makes
;; allocate memory every time it runs; the engine refuses the module.
(module
  ;; refs(n) takes a reference to itself n times and returns n.
  (func $refs (export "refs") (param $n i32) (result i32)
    (local $i i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (drop (ref.func $refs))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (local.get $i)))
