// Node.js baseline for hyper-bench: an `http` server answering hyper-sched's
// POST /call JSON with WebAssembly.instantiate per request, on Node's one
// event-loop thread. No npm dependencies; node >= 18.
//
//   node bench/nodebaseline/server.js --listen 127.0.0.1:3003 --modules testdata
//
// Like bench/gobaseline it has no admission, isolation or deadline
// enforcement; it only reports deadline_met (arrival to answer against
// expected_deadline) so that hyper-bench counts misses the same way.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');

function flag(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

// --- wasm signatures -------------------------------------------------------
// The JS API does not expose an export's parameter and result types, which
// the seed's result form ("[I32(6765)]") and string params need. So read them
// from the binary: the type, import, function and export sections.

const VALTYPE = { 0x7f: 'I32', 0x7e: 'I64', 0x7d: 'F32', 0x7c: 'F64' };

function signatures(buf) {
  let p = 8; // magic + version
  const u32 = () => {
    let result = 0, shift = 0, b;
    do {
      b = buf[p++];
      result |= (b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80);
    return result >>> 0;
  };
  const name = () => {
    const n = u32();
    const s = buf.toString('utf8', p, p + n);
    p += n;
    return s;
  };
  const types = [];
  const funcTypes = []; // type index of each function, imports first
  const exports = {};
  while (p < buf.length) {
    const id = buf[p++];
    const size = u32();
    const end = p + size;
    if (id === 1) { // type
      for (let n = u32(); n > 0; n--) {
        p++; // 0x60
        const params = [];
        for (let k = u32(); k > 0; k--) params.push(VALTYPE[buf[p++]] || 'V128');
        const results = [];
        for (let k = u32(); k > 0; k--) results.push(VALTYPE[buf[p++]] || 'V128');
        types.push({ params, results });
      }
    } else if (id === 2) { // import
      for (let n = u32(); n > 0; n--) {
        name(); name();
        const kind = buf[p++];
        if (kind === 0) funcTypes.push(u32());
        else if (kind === 1) { p++; const f = u32(); u32(); if (f & 1) u32(); } // table
        else if (kind === 2) { const f = u32(); u32(); if (f & 1) u32(); } // memory
        else if (kind === 3) { p += 2; } // global
      }
    } else if (id === 3) { // function
      for (let n = u32(); n > 0; n--) funcTypes.push(u32());
    } else if (id === 7) { // export
      for (let n = u32(); n > 0; n--) {
        const nm = name();
        const kind = buf[p++];
        const idx = u32();
        if (kind === 0) exports[nm] = idx;
      }
    }
    p = end;
  }
  const out = {};
  for (const [nm, idx] of Object.entries(exports)) out[nm] = types[funcTypes[idx]];
  return out;
}

// --- values ----------------------------------------------------------------

function toArg(type, v) {
  const s = String(v);
  switch (type) {
    case 'I32': if (!/^[+-]?(0x[0-9a-f]+|\d+)$/i.test(s)) throw new Error(`"${s}" is not an i32`); return Number(s) | 0;
    case 'I64': return BigInt.asIntN(64, BigInt(s));
    case 'F32': case 'F64': { const f = Number(s); if (Number.isNaN(f) && !/^nan$/i.test(s)) throw new Error(`"${s}" is not a float`); return f; }
  }
  throw new Error(`type ${type} is not supported`);
}

// seedItem prints one result as wasmtime 11's Debug did: floats as raw bits.
function seedItem(type, v) {
  switch (type) {
    case 'I32': return `I32(${v | 0})`;
    case 'I64': return `I64(${BigInt.asIntN(64, v)})`;
    case 'F32': { const b = new DataView(new ArrayBuffer(4)); b.setFloat32(0, v); return `F32(${b.getUint32(0)})`; }
    case 'F64': { const b = new DataView(new ArrayBuffer(8)); b.setFloat64(0, v); return `F64(${b.getBigUint64(0)})`; }
  }
  return `${type}(?)`;
}

function jsonItem(type, v) {
  // JSON has no 64-bit integers: an i64 outside 2^53 goes as a string.
  if (type === 'I64') v = Number.isSafeInteger(Number(v)) ? Number(v) : String(v);
  return { type: type.toLowerCase(), value: v };
}

// --- server ----------------------------------------------------------------

async function load(dir) {
  const mods = {};
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.wasm')).sort()) {
    const buf = fs.readFileSync(path.join(dir, f));
    try {
      mods[f] = { module: await WebAssembly.compile(buf), sigs: signatures(buf) };
    } catch (e) {
      console.error(`skip module ${f}: ${e.message}`);
    }
  }
  return mods;
}

function send(res, code, body) {
  const s = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(s) });
  res.end(s);
}

async function call(mods, body, arrived) {
  let c;
  try { c = JSON.parse(body); } catch (e) { return [400, { status: 'Error_Bad_request', error: 'decode body: ' + e.message }]; }
  const deadline = Number(c.expected_deadline || 0);
  if (!(deadline >= 0)) return [400, { status: 'Error_Invalid_params', error: 'expected_deadline must be milliseconds' }];
  const m = mods[c.wasm_name];
  if (!m) return [404, { status: 'Error_Invalid_wasm_name', error: `no module "${c.wasm_name}"` }];
  const sig = m.sigs[c.export_func];
  if (!sig) return [404, { status: 'Error_Invalid_export_func', error: `no export "${c.export_func}"` }];
  const params = c.params || [];
  if (params.length !== sig.params.length) {
    return [400, { status: 'Error_Invalid_params', error: `params: list has ${params.length} values for ${sig.params.length} params` }];
  }
  let args;
  try { args = params.map((v, i) => toArg(sig.params[i], v)); } catch (e) {
    return [400, { status: 'Error_Invalid_params', error: e.message }];
  }
  let out;
  const t0 = process.hrtime.bigint();
  let t1;
  try {
    // A new instance per request, as the Go baseline and hyper-sched do.
    const inst = await WebAssembly.instantiate(m.module, {});
    t1 = process.hrtime.bigint();
    out = inst.exports[c.export_func](...args);
  } catch (e) {
    return [500, { status: 'Error_Trap', error: e.message }];
  }
  const t2 = process.hrtime.bigint();
  const results = sig.results.length === 0 ? [] : sig.results.length === 1 ? [out] : out;
  const answer = {
    status: 'Success',
    result: '[' + results.map((v, i) => seedItem(sig.results[i], v)).join(', ') + ']',
    results: results.map((v, i) => jsonItem(sig.results[i], v)),
    timings_us: { instantiate: Number((t1 - t0) / 1000n), exec: Number((t2 - t1) / 1000n), total: Number((t2 - arrived) / 1000n) },
  };
  if (deadline > 0) answer.deadline_met = Number(process.hrtime.bigint() - arrived) / 1e6 <= deadline;
  return [200, answer];
}

async function main() {
  const [host, port] = flag('listen', '127.0.0.1:3003').split(/:(?=[^:]*$)/);
  const mods = await load(flag('modules', 'testdata'));
  const server = http.createServer((req, res) => {
    const arrived = process.hrtime.bigint();
    if (req.method !== 'POST' || req.url !== '/call') {
      send(res, 404, { status: 'Error_Bad_request', error: 'only POST /call is served' });
      return;
    }
    const chunks = [];
    let size = 0;
    req.on('data', (d) => { size += d.length; if (size <= 1 << 20) chunks.push(d); });
    req.on('end', () => {
      if (size > 1 << 20) { send(res, 413, { status: 'Error_Too_large', error: 'body over 1 MiB' }); return; }
      call(mods, Buffer.concat(chunks).toString('utf8'), arrived).then(([code, body]) => send(res, code, body));
    });
  });
  server.keepAliveTimeout = 90000; // keep client connections as long as hyper-bench does
  server.listen(Number(port), host, () => {
    // The actual port, so that a test can listen on port 0.
    console.error(`serving on ${host}:${server.address().port}, modules ${Object.keys(mods).join(' ')}`);
  });
  const stop = () => { server.close(() => process.exit(0)); setTimeout(() => process.exit(0), 2000).unref(); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => { console.error(e); process.exit(1); });
