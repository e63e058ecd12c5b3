// The interpreter of one local session: evaluates JavaScript sent by localpool (Python) in a
// persistent vm context, so that var/let/const and globals from one execution are visible in the
// next one (as in Azure's NodeLTS sessions, which run IJavascript).
//
// Protocol: newline-delimited JSON.
//   stdin  (from localpool):  {"id": "<random>", "code": "<JavaScript>"}
//   stdout (to localpool):    {"type": "ready", "permission": true|false}   once, at start-up
//                             {"type": "result", "id", "stdout", "stderr", "result", "error", "durationMs"}
// Everything the user's code writes through console.* or process.stdout/stderr.write is captured
// per execution instead of reaching the real stdout, so the protocol stream stays clean. Lines that
// are not valid protocol messages are ignored by localpool.
//
// Usage: node [permission flags] runner.js <max characters per output stream>
'use strict';

const vm = require('node:vm');
const util = require('node:util');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { createRequire } = require('node:module');

const DEFAULT_STREAM_MAX_CHARS = 4096;
const RESULT_INSPECT_DEPTH = 4;
const RESULT_INSPECT_MAX_ARRAY = 100;

const streamMaxChars = Number.parseInt(process.argv[2], 10) || DEFAULT_STREAM_MAX_CHARS;
const sessionDir = process.cwd();
const runnerFile = __filename;

// Keep the real writer for protocol messages before the user's view of stdout is redirected.
const writeProtocol = process.stdout.write.bind(process.stdout);

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

// The permission model does not cover signals: without this guard, session code could kill the
// local pool's server or other sessions (same user). Only this process and its own process group
// (the runner is a group leader) may be signalled. process.kill looks up process._kill at call time.
const rawKill = process._kill;
const ownTargets = new Set([process.pid, 0, -process.pid]);
process._kill = function guardedKill(pid, signal) {
  if (!ownTargets.has(Number(pid))) {
    return -os.constants.errno.EPERM;
  }
  return rawKill.call(process, pid, signal);
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
  const name = String(value.name || 'Error');
  const message = String(value.message ?? '');
  // Drop the frames of this runner and of Node's internals: they say nothing about the user's code.
  const stack = String(value.stack || `${name}: ${message}`)
    .split('\n')
    .filter((line) => !line.includes(runnerFile) && !line.includes('(node:') && !line.includes(' node:'))
    .join('\n');
  // Node's own errors carry a code such as ERR_ACCESS_DENIED (the permission model's refusal).
  const code = typeof value.code === 'string' ? value.code : '';
  return { name, message, code, stack: stack.slice(0, streamMaxChars) };
}

// Report errors thrown later by timers or promise callbacks of an execution instead of dying.
process.on('uncaughtException', (error) => {
  if (current !== null) {
    current.stderr = appendCapped(current.stderr, `Uncaught ${describeError(error).stack}\n`);
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

async function execute(request) {
  current = { stdout: '', stderr: '' };
  const started = process.hrtime.bigint();
  let result = '';
  let error = null;
  try {
    const script = new vm.Script(String(request.code), { filename: 'execution.js' });
    let value = script.runInContext(context, { displayErrors: false });
    // A returned promise is awaited; localpool enforces the execution timeout from outside.
    if (isThenable(value)) {
      value = await value;
    }
    result = formatResult(value);
  } catch (thrown) {
    error = describeError(thrown);
    current.stderr = appendCapped(current.stderr, `Uncaught ${error.stack}\n`);
  }
  const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
  const reply = { type: 'result', id: request.id, stdout: current.stdout, stderr: current.stderr, result, error, durationMs };
  current = null;
  writeProtocol(`${JSON.stringify(reply)}\n`);
}

// Executions run one after another, in the order they arrive.
let queue = Promise.resolve();
const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  let request;
  try {
    request = JSON.parse(line);
  } catch {
    return;
  }
  queue = queue.then(() => execute(request));
});
// localpool closes stdin to stop the runner; let the queued executions finish first.
lines.on('close', () => queue.then(() => process.exit(0)));

const permission = Boolean(
  process.permission && process.permission.has('fs.write', sessionDir) && !process.permission.has('fs.read', '/'),
);
writeProtocol(`${JSON.stringify({ type: 'ready', permission })}\n`);
