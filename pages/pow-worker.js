// anteroom's join-challenge worker: given {nonce, difficulty}, finds a decimal string s such that
// SHA-256(nonce + ":" + s) starts with `difficulty` zero bits, and posts back {solution, hashes,
// ms, engine}. It runs off the page's thread, so the page stays responsive while it works.
//
// SHA-256 is computed here by default ({engine: "js"}): the nonce's first block is hashed once
// and each candidate costs one compression. crypto.subtle ({engine: "subtle"}) gives the same
// answers but pays a promise and a copy per hash: measured 15-20 times slower (headless
// Chromium and Node), and a slower solver only makes a person wait longer for the same cost
// to a bot. It also needs a secure context, which a plain-HTTP page away from localhost is not.
"use strict";
var BATCH = 2048;
var encoder = new TextEncoder();

function zeros(d, bits) {
  var i = 0;
  for (; bits >= 8; bits -= 8, i++) if (d[i] !== 0) return false;
  return bits === 0 || (d[i] >> (8 - bits)) === 0;
}

var K = [
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
];
var W = new Int32Array(64);

// One SHA-256 compression of the 64 bytes of `b` at `o` into the state `h` (8 words).
function compress(h, b, o) {
  var i;
  for (i = 0; i < 16; i++) W[i] = (b[o + 4 * i] << 24) | (b[o + 4 * i + 1] << 16) | (b[o + 4 * i + 2] << 8) | b[o + 4 * i + 3];
  for (i = 16; i < 64; i++) {
    var x = W[i - 15], y = W[i - 2];
    var s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    var s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
  }
  var a = h[0], c1 = h[1], c2 = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
  for (i = 0; i < 64; i++) {
    var t1 = (k + (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
      ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
    var t2 = ((((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))) +
      ((a & c1) ^ (a & c2) ^ (c1 & c2))) | 0;
    k = g; g = f; f = e; e = (d + t1) | 0; d = c2; c2 = c1; c1 = a; a = (t1 + t2) | 0;
  }
  h[0] = (h[0] + a) | 0; h[1] = (h[1] + c1) | 0; h[2] = (h[2] + c2) | 0; h[3] = (h[3] + d) | 0;
  h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + k) | 0;
}
var IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

// The state after the whole 64-byte blocks of `bytes`, and the bytes left over.
function midstate(bytes) {
  var h = new Int32Array(IV), o = 0;
  for (; o + 64 <= bytes.length; o += 64) compress(h, bytes, o);
  return { h: h, tail: bytes.slice(o), length: bytes.length };
}

// Finishes `mid` with `extra` (ASCII) appended: the padded last block(s) are written into buf.
function finish(mid, extra, h, buf) {
  var t = mid.tail.length, len = t + extra.length, n = len + 9 <= 64 ? 64 : 128, i;
  buf.fill(0, 0, n); buf.set(mid.tail);
  for (i = 0; i < extra.length; i++) buf[t + i] = extra.charCodeAt(i);
  buf[len] = 0x80;
  var bits = (mid.length + extra.length) * 8;
  buf[n - 4] = bits >>> 24; buf[n - 3] = (bits >>> 16) & 255; buf[n - 2] = (bits >>> 8) & 255; buf[n - 1] = bits & 255;
  h.set(mid.h); compress(h, buf, 0);
  if (n === 128) compress(h, buf, 64);
}

// SHA-256 of a short message (bytes), as 32 bytes.
function sha256(m) {
  var h = new Int32Array(8), out = new Uint8Array(32), i, s = "";
  var mid = midstate(m.slice(0, m.length - (m.length % 64)));
  mid.tail = m.slice(m.length - (m.length % 64)); mid.length = m.length;
  finish(mid, s, h, new Uint8Array(128));
  for (i = 0; i < 8; i++) {
    out[4 * i] = h[i] >>> 24; out[4 * i + 1] = (h[i] >>> 16) & 255;
    out[4 * i + 2] = (h[i] >>> 8) & 255; out[4 * i + 3] = h[i] & 255;
  }
  return out;
}

// Whether the state words start with `bits` zero bits.
function zeroWords(h, bits) {
  var i = 0;
  for (; bits >= 32; bits -= 32, i++) if (h[i] !== 0) return false;
  return bits === 0 || (h[i] >>> (32 - bits)) === 0;
}

// Tries BATCH candidates from `from`: the first that solves, else null. The nonce's whole
// blocks are hashed once (the midstate); each candidate costs one or two compressions.
function batch(job, difficulty, from) {
  var i;
  if (job.engine === "js") {
    for (i = 0; i < BATCH; i++) {
      finish(job.mid, String(from + i), job.h, job.buf);
      if (zeroWords(job.h, difficulty)) return Promise.resolve(from + i);
    }
    return Promise.resolve(null);
  }
  var jobs = [];
  for (i = 0; i < BATCH; i++) jobs.push(crypto.subtle.digest("SHA-256", encoder.encode(job.prefix + (from + i))));
  return Promise.all(jobs).then(function (ds) {
    for (var j = 0; j < ds.length; j++) if (zeros(new Uint8Array(ds[j]), difficulty)) return from + j;
    return null;
  });
}

function solve(nonce, difficulty, engine) {
  var prefix = nonce + ":", started = Date.now();
  var job = { engine: engine, prefix: prefix, mid: midstate(encoder.encode(prefix)), h: new Int32Array(8), buf: new Uint8Array(128) };
  if (job.engine !== "subtle" || !(self.crypto && crypto.subtle)) job.engine = "js";
  function from(n) {
    return batch(job, difficulty, n).then(function (found) {
      if (found === null) return from(n + BATCH);
      return { solution: String(found), hashes: found + 1, ms: Date.now() - started, engine: job.engine };
    });
  }
  return from(0);
}

if (typeof self !== "undefined" && typeof self.postMessage === "function" && typeof module === "undefined") {
  self.onmessage = function (e) {
    var c = e.data || {};
    solve(String(c.nonce), Number(c.difficulty) || 0, c.engine === "subtle" ? "subtle" : "js").then(
      function (r) { self.postMessage(r); },
      function (err) { self.postMessage({ error: String(err) }); }
    );
  };
} else if (typeof module !== "undefined") {
  module.exports = { sha256: sha256, zeros: zeros, solve: solve };
}
