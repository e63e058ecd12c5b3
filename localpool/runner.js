// The interpreter of one local session: evaluates JavaScript sent by localpool (Python) in a
// persistent vm context, so that var/let/const and globals from one execution are visible in the
// next one (as in Azure's NodeLTS sessions, which run IJavascript).
//
// Protocol: newline-delimited JSON.
//   stdin  (from localpool):  {"frame": "<random marker>"}           once, first line
//                             {"id": "<random>", "code": "<JavaScript>"}
//   stdout (to localpool):    <marker>{"type": "ready", "permission": true|false}   once, at start-up
//                             <marker>{"type": "result", "id", "stdout", "stderr", "result", "error", "durationMs"}
// The marker arrives before any session code runs and is never handed to it; localpool discards
// every byte on stdout that is not a marked message (session code can write to fd 1 directly), so
// stray output costs it a byte search, never a parse. The marker is framing, not a secret (a
// determined session can dig it out of its own heap): localpool accepts only the reply it awaits
// and validates it. Everything the user's code writes through console.* or
// process.stdout/stderr.write is captured per execution instead.
//
// Session code can reach this realm's objects (process.constructor.constructor('return JSON')()),
// so everything the protocol and the guards below rely on is captured here, before any session
// code runs, and the guards use only operators on primitives. localpool still validates every
// message, since a session can always break its own runner.
//
// Usage: node [permission flags] runner.js <max characters per output stream>
'use strict';

const vm = require('node:vm');
const util = require('node:util');
const fs = require('node:fs');
const os = require('node:os');
const v8 = require('node:v8');
const path = require('node:path');
const readline = require('node:readline');
const { createRequire } = require('node:module');

const DEFAULT_STREAM_MAX_CHARS = 4096;
const RESULT_INSPECT_DEPTH = 4;
const RESULT_INSPECT_MAX_ARRAY = 100;
const PROTOCOL_FD = 1;
// If session code made fd 1 non-blocking and the pipe is full, retry this often, this many times
// (about 10 s: localpool drains the pipe while it awaits this reply, and times the execution out anyway).
const PROTOCOL_WRITE_RETRY_MS = 1;
const PROTOCOL_WRITE_MAX_RETRIES = 10000;
// Said when a thrown value defeats describeError (throwing getters, hostile proxies, ...).
const UNDESCRIBABLE_ERROR = 'a thrown value that could not be described';

// Captured before session code can replace them.
const apply = Reflect.apply;
const stringify = JSON.stringify;
const parseJson = JSON.parse;
const toNumber = Number;
const writeSync = fs.writeSync;
const bufferFrom = Buffer.from.bind(Buffer);
const hrtimeBigint = process.hrtime.bigint;
const sleepCell = new Int32Array(new SharedArrayBuffer(4));
const atomicsWait = Atomics.wait;
const ownPid = process.pid;
const EPERM = os.constants.errno.EPERM;
const SIGUSR1 = os.constants.signals.SIGUSR1;

const streamMaxChars = Number.parseInt(process.argv[2], 10) || DEFAULT_STREAM_MAX_CHARS;
const sessionDir = process.cwd();
const runnerFile = __filename;

// Set from the first stdin line; protocol messages are not written before it arrives.
let frameMarker = null;

/** Write one protocol message straight to fd 1 (not through process.stdout, which session code can patch). */
function writeProtocol(message) {
  const bytes = bufferFrom(`${frameMarker}${stringify(message)}\n`, 'utf8');
  let offset = 0;
  let retries = 0;
  while (offset < bytes.length) {
    try {
      offset += apply(writeSync, fs, [PROTOCOL_FD, bytes, offset, bytes.length - offset]);
    } catch (error) {
      if (error?.code !== 'EAGAIN' || retries >= PROTOCOL_WRITE_MAX_RETRIES) {
        throw error;
      }
      retries += 1;
      apply(atomicsWait, Atomics, [sleepCell, 0, 0, PROTOCOL_WRITE_RETRY_MS]);
    }
  }
}

// The capture buffers of the execution in progress (null between executions, when stray output
// from timers is dropped rather than attributed to a later execution).
let current = null;

function appendCapped(existing, text) {
  if (existing.length >= streamMaxChars) {
    return existing;
  }
  return existing + text.slice(0, streamMaxChars - existing.length);
}

function chunkToString(chunk, encoding) {
  if (typeof chunk === 'string') {
    return chunk;
  }
  if (chunk instanceof Uint8Array) {
    return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString(
      typeof encoding === 'string' ? encoding : 'utf8',
    );
  }
  return String(chunk);
}

function capturingWrite(streamName) {
  return function write(chunk, encoding, callback) {
    if (current !== null) {
      current[streamName] = appendCapped(current[streamName], chunkToString(chunk, encoding));
    }
    const done = typeof encoding === 'function' ? encoding : callback;
    if (typeof done === 'function') {
      process.nextTick(done);
    }
    return true;
  };
}

// console.log/error call stream.write at call time, so patching the streams captures them too.
process.stdout.write = capturingWrite('stdout');
process.stderr.write = capturingWrite('stderr');

// -- guards -----------------------------------------------------------------------------------
// The permission model covers files, child processes, workers, addons and the inspector, but not
// signals, scheduling priority or V8 flags: without these guards, session code (same user as the
// local pool, possibly root) could kill or slow down the server and other sessions.
//
// Each guard converts an argument exactly once and passes the converted primitive on: converting
// again (as the native binding would) lets an object whose valueOf answers differently each time
// pass the check with one value and act with another.

function permissionError(syscall) {
  const error = new Error(`${syscall} EPERM`);
  error.code = 'EPERM';
  error.errno = -EPERM;
  error.syscall = syscall;
  return error;
}

// Only this process and its own process group (the runner is a group leader) may be signalled,
// and never with SIGUSR1, which would start the inspector. process.kill looks up process._kill at
// call time and the binding converts both arguments to int32, as `| 0` does here.
const rawKill = process._kill;
process._kill = function guardedKill(pid, signal) {
  const target = pid | 0;
  const signalNumber = signal | 0;
  if ((target !== ownPid && target !== 0 && target !== -ownPid) || signalNumber === SIGUSR1) {
    return -EPERM;
  }
  return apply(rawKill, process, [target, signalNumber]);
};

// process._debugProcess(pid) sends SIGUSR1 to any process: to a Python server that is death.
process._debugProcess = function guardedDebugProcess() {
  throw permissionError('_debugProcess');
};

// Only this process's priority may be changed, and only lowered (root could raise it above the
// server's). os.setPriority accepts numbers only, so nothing is converted here.
const rawSetPriority = os.setPriority;
const rawGetPriority = os.getPriority;
os.setPriority = function guardedSetPriority(pid, priority) {
  // setPriority(priority) means this process, as in Node.
  const target = priority === undefined ? 0 : pid;
  const wanted = priority === undefined ? pid : priority;
  if (typeof target !== 'number' || typeof wanted !== 'number') {
    const error = new TypeError('The "pid" and "priority" arguments must be of type number');
    error.code = 'ERR_INVALID_ARG_TYPE';
    throw error;
  }
  if ((target !== ownPid && target !== 0) || !(wanted >= apply(rawGetPriority, os, [0]))) {
    throw permissionError('setpriority');
  }
  return apply(rawSetPriority, os, [0, wanted]);
};

// V8 flags such as --allow-natives-syntax expose internals that can corrupt memory and so get
// past every guard above.
v8.setFlagsFromString = function guardedSetFlagsFromString() {
  throw permissionError('setFlagsFromString');
};

function isErrorLike(value) {
  // Errors thrown inside the vm context come from another realm, so instanceof Error fails.
  return util.types.isNativeError(value) || (value !== null && typeof value === 'object' && 'stack' in value);
}

function describeError(value) {
  if (!isErrorLike(value)) {
    const shown = util.inspect(value).slice(0, streamMaxChars);
    return { name: 'Error', message: `Uncaught ${shown}`, code: '', stack: shown };
  }
  const name = String(value.name || 'Error').slice(0, streamMaxChars);
  const message = String(value.message ?? '').slice(0, streamMaxChars);
  // Drop the frames of this runner and of Node's internals: they say nothing about the user's code.
  const stack = String(value.stack || `${name}: ${message}`)
    .split('\n')
    .filter((line) => !line.includes(runnerFile) && !line.includes('(node:') && !line.includes(' node:'))
    .join('\n');
  // Node's own errors carry a code such as ERR_ACCESS_DENIED (the permission model's refusal).
  const rawCode = value.code; // read once: a getter may answer a string only the first time
  const code = typeof rawCode === 'string' ? rawCode.slice(0, streamMaxChars) : '';
  return { name, message, code, stack: stack.slice(0, streamMaxChars) };
}

function undescribableError() {
  return { __proto__: null, name: 'Error', message: UNDESCRIBABLE_ERROR, code: '', stack: UNDESCRIBABLE_ERROR };
}

/** describeError, or a plain description when the thrown value defeats it (getters that throw, proxies). */
function describeErrorSafely(value) {
  try {
    const { name, message, code, stack } = describeError(value);
    // Plain typeof checks: Array.prototype.every could have been replaced by session code.
    const allText =
      typeof name === 'string' && typeof message === 'string' && typeof code === 'string' && typeof stack === 'string';
    if (allText) {
      return { __proto__: null, name, message, code, stack };
    }
  } catch {
    // Fall through to the plain description: nothing about the value can be trusted.
  }
  return undescribableError();
}

// Report errors thrown later by timers or promise callbacks of an execution instead of dying.
process.on('uncaughtException', (error) => {
  if (current !== null) {
    current.stderr = appendCapped(current.stderr, `Uncaught ${describeErrorSafely(error).stack}\n`);
  }
});

function buildSandbox() {
  const sandbox = {};
  // Give the context Node's globals (process, Buffer, timers, URL, fetch, ...) except those every
  // fresh context already has. Copy descriptors so lazy getters stay lazy (fast start-up).
  const contextBuiltins = new Set(vm.runInNewContext('Object.getOwnPropertyNames(globalThis)'));
  for (const key of Object.getOwnPropertyNames(globalThis)) {
    if (!contextBuiltins.has(key) && key !== 'global') {
      Object.defineProperty(sandbox, key, Object.getOwnPropertyDescriptor(globalThis, key));
    }
  }
  const entry = path.join(sessionDir, 'session.js');
  const sessionModule = { exports: {}, filename: entry, id: '.', path: sessionDir };
  Object.assign(sandbox, {
    console,
    require: createRequire(entry),
    module: sessionModule,
    exports: sessionModule.exports,
    __filename: entry,
    __dirname: sessionDir,
  });
  sandbox.global = sandbox;
  return sandbox;
}

const context = vm.createContext(buildSandbox(), { name: 'localpool-session' });

function formatResult(value) {
  if (value === undefined) {
    return '';
  }
  const text =
    typeof value === 'string'
      ? value
      : util.inspect(value, {
          depth: RESULT_INSPECT_DEPTH,
          breakLength: Infinity,
          maxArrayLength: RESULT_INSPECT_MAX_ARRAY,
          maxStringLength: streamMaxChars,
        });
  return text.slice(0, streamMaxChars);
}

function isThenable(value) {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof value.then === 'function';
}

/** The protocol message answering request `id` (a prototype-less object: nothing session code patched applies). */
function resultMessage(id, durationMs, error, stdout = '', stderr = '', result = '') {
  return { __proto__: null, type: 'result', id, stdout, stderr, result, error, durationMs };
}

/** Run one request and always answer it, whatever the code threw or did to this realm. */
async function execute(request) {
  const capture = { stdout: '', stderr: '' };
  current = capture;
  const started = hrtimeBigint();
  let result = '';
  let error = null;
  try {
    const script = new vm.Script(request.code, { filename: 'execution.js' });
    let value = script.runInContext(context, { displayErrors: false });
    // A returned promise is awaited; localpool enforces the execution timeout from outside.
    if (isThenable(value)) {
      value = await value;
    }
    result = formatResult(value);
  } catch (thrown) {
    error = describeErrorSafely(thrown);
    try {
      capture.stderr = appendCapped(capture.stderr, `Uncaught ${error.stack}\n`);
    } catch {
      // The error is still reported in the reply's error field.
    }
  } finally {
    current = null;
    const durationMs = toNumber(hrtimeBigint() - started) / 1e6;
    const textResult = typeof result === 'string' ? result : '';
    try {
      writeProtocol(resultMessage(request.id, durationMs, error, capture.stdout, capture.stderr, textResult));
    } catch {
      // Only what this realm can no longer do is left out: the execution still gets an answer.
      writeProtocol(resultMessage(request.id, durationMs, undescribableError()));
    }
  }
}

// Executions run one after another, in the order they arrive. The first line carries the marker
// of protocol messages; the runner answers it with "ready".
let queue = Promise.resolve();
const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  let request;
  try {
    request = parseJson(line);
  } catch {
    return;
  }
  if (frameMarker === null) {
    if (typeof request?.frame === 'string' && request.frame.length > 0) {
      frameMarker = request.frame;
      announceReady();
    }
    return;
  }
  if (typeof request?.id === 'string' && typeof request.code === 'string') {
    queue = queue.then(() => execute(request));
  }
});
// localpool closes stdin to stop the runner; let the queued executions finish first.
lines.on('close', () => queue.then(() => process.exit(0)));

function announceReady() {
  const permission = Boolean(
    process.permission && process.permission.has('fs.write', sessionDir) && !process.permission.has('fs.read', '/'),
  );
  writeProtocol({ __proto__: null, type: 'ready', permission });
}
