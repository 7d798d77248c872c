#!/usr/bin/env node
// A private OpenStack Swift with its S3 API (s3api + tempauth) on 127.0.0.1, for tests and
// benchmarks of the S3 backend against a real server.
//
//   node scripts/swift-s3.mjs            start, print the endpoint and credentials, run until
//                                        Ctrl-C / SIGTERM, then stop every server and remove
//                                        the data
//   import { startSwift } from './swift-s3.mjs'    the same from code (vitest globalSetup)
//
// What runs: memcached, and the account, container, object and proxy servers, each started
// with /usr/bin/python3 (another python3 on PATH may lack Swift's modules) in its own session,
// because on SIGTERM a Swift server kills its whole process group. One-replica rings over one
// device, a directory under a temporary directory whose filesystem must take user xattrs (the
// object server keeps metadata in them). Stopping signals each process group by PID (SIGTERM,
// then SIGKILL after a grace period), so nothing is left running.
//
// Swift binds with SO_REUSEPORT: a second server on a busy port would not fail but share its
// traffic. Ports are therefore picked free by the kernel and checked free again just before the
// servers start.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  closeSync,
  constants,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PYTHON = '/usr/bin/python3';
const SERVERS = ['account', 'container', 'object', 'proxy'];
/** tempauth's user `test:tester` with key `testing`: its S3 access key id and secret. */
const ACCESS_KEY_ID = 'test:tester';
const SECRET_ACCESS_KEY = 'testing';
const REGION = 'us-east-1';

/** The programs a Swift test server needs that are missing (empty if none). */
export function missingSwiftTools() {
  const tools = [
    PYTHON,
    '/usr/bin/memcached',
    ...SERVERS.map((name) => `/usr/bin/swift-${name}-server`),
  ];
  return tools.filter((tool) => {
    try {
      accessSync(tool, constants.X_OK);
      return false;
    } catch {
      return true;
    }
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Resolves true if something accepts connections on 127.0.0.1:port. */
function listening(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function serverConf(base, name, port, extra = '', workers = 0) {
  const common = `[DEFAULT]
bind_ip = 127.0.0.1
bind_port = ${port}
workers = ${workers}
# Worker processes switch to this user (default "swift"): stay who we are.
user = ${userInfo().username}
swift_dir = ${base}/etc
devices = ${base}/srv
mount_check = false
# Swift refuses writes (507, or ENOSPC inside) once the device has less than fallocate_reserve
# free, 1 % by default: 2.5 GB of a 252 GB CI disk that the e2e images share. The test store
# holds megabytes; let a nearly full disk fail where it really is full, not 2.5 GB early.
fallocate_reserve = 0
disable_fallocate = true
log_name = swift-${name}
`;
  if (name === 'proxy') return common + extra;
  return `${common}
[pipeline:main]
pipeline = ${name}-server

[app:${name}-server]
use = egg:swift#${name}

[${name}-replicator]
[${name}-auditor]
${name === 'account' ? '[account-reaper]\n' : ''}${name === 'container' ? '[container-updater]\n[container-sync]\n' : ''}${name === 'object' ? '[object-updater]\n' : ''}`;
}

/** Proxy filters used with their defaults (the egg name is the filter name with `_`). */
const PLAIN_FILTERS = [
  'catch_errors',
  'gatekeeper',
  'healthcheck',
  'proxy-logging',
  'listing_formats',
  'copy',
  'slo',
  'dlo',
];

function proxyPipeline(memcachePort) {
  return `
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

[filter:s3api]
use = egg:swift#s3api
location = ${REGION}

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = ${SECRET_ACCESS_KEY} .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:${memcachePort}

${PLAIN_FILTERS.map((f) => `[filter:${f}]\nuse = egg:swift#${f.replace('-', '_')}\n`).join('\n')}`;
}

// Checks what the servers need (Swift's s3api and xattr modules, user xattrs on the device
// directory) and builds one-replica rings over one device with 2^6 partitions, all in one Python
// process: Python's start-up costs seconds on a loaded machine, so it is paid once.
const PREPARE_SCRIPT = `
import os, sys
import swift.common.middleware.s3api, xattr
from swift.common.ring import RingBuilder
etc, device = sys.argv[1], sys.argv[2]
try:
    os.setxattr(device, 'user.diskube', b'1')
except OSError as e:
    sys.exit('%s does not take user xattrs (%s), which the object server needs: set TMPDIR '
             'to a directory on ext4, xfs or btrfs' % (device, e))
for name, port in zip(('account', 'container', 'object'), sys.argv[3:6]):
    builder = RingBuilder(6, 1, 0)
    builder.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': int(port),
                     'device': 'd1', 'weight': 1.0, 'meta': ''})
    builder.rebalance()
    builder.save('%s/%s.builder' % (etc, name))
    builder.get_ring().save('%s/%s.ring.gz' % (etc, name))
`;

/**
 * A Swift server set on a data directory. `start()` (again after `stop()`, on the same data and
 * ports) and `stop()`; `destroy()` stops and removes the directory.
 *
 * @param {{ dir?: string, readyTimeoutMs?: number, workers?: number }} [options]
 */
export async function createSwift(options = {}) {
  const missing = missingSwiftTools();
  if (missing.length > 0) throw new Error(`swift-s3: missing ${missing.join(', ')}`);
  const base = options.dir ?? mkdtempSync(join(tmpdir(), 'diskube-swift-'));
  const ownsDir = options.dir === undefined;
  const readyTimeoutMs = options.readyTimeoutMs ?? 90_000;
  // 0: each server one process (the tests); a benchmark may give the proxy and object servers
  // several worker processes, as a production Swift would have.
  const workers = options.workers ?? 0;
  for (const sub of ['etc', 'srv/d1', 'log', 'run'])
    mkdirSync(join(base, sub), { recursive: true });

  const ports = {};
  for (const name of [...SERVERS, 'memcached']) ports[name] = await freePort();
  writeFileSync(
    join(base, 'etc/swift.conf'),
    `[swift-hash]\nswift_hash_path_suffix = ${randomBytes(8).toString('hex')}\n` +
      'swift_hash_path_prefix = diskube\n\n[storage-policy:0]\nname = Policy-0\ndefault = yes\n',
  );
  for (const name of SERVERS) {
    const extra = name === 'proxy' ? proxyPipeline(ports.memcached) : '';
    writeFileSync(
      join(base, `etc/${name}-server.conf`),
      serverConf(
        base,
        name,
        ports[name],
        extra,
        name === 'proxy' || name === 'object' ? workers : 0,
      ),
    );
  }
  const portArgs = [ports.account, ports.container, ports.object].map(String);
  const prepared = spawnSync(
    PYTHON,
    ['-c', PREPARE_SCRIPT, join(base, 'etc'), join(base, 'srv/d1'), ...portArgs],
    { encoding: 'utf8' },
  );
  if (prepared.status !== 0) {
    if (ownsDir) rmSync(base, { recursive: true, force: true });
    throw new Error(`swift-s3: preparing ${base} failed\n${prepared.stderr}`);
  }

  const endpoint = `http://127.0.0.1:${ports.proxy}`;
  /** @type {{ name: string, pid: number, exited: Promise<void> }[]} */
  let children = [];

  function launch(name, command, args) {
    const log = openSync(join(base, `log/${name}.log`), 'a');
    // detached: a new session and process group, so that a Swift server's killpg(0) on SIGTERM
    // cannot reach us, and so that we can signal the server with all its children.
    const child = spawn(command, args, { detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    const exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.unref();
    children.push({ name, pid: child.pid, exited });
  }

  /** Stops every server: SIGTERM, then SIGKILL after 5 s; `{ kill: true }`: SIGKILL at once (a crash). */
  async function stop({ kill = false } = {}) {
    const running = children;
    children = [];
    for (const c of running) signal(c.pid, kill ? 'SIGKILL' : 'SIGTERM');
    await Promise.all(
      running.map(async (c) => {
        const done = await Promise.race([
          c.exited.then(() => true),
          sleep(5_000).then(() => false),
        ]);
        // The leader may be gone while its workers linger: always sweep the group.
        signal(c.pid, 'SIGKILL');
        if (!done) await c.exited;
      }),
    );
  }

  /** Synchronous last resort when this process ends without `destroy()`. */
  function killAll() {
    for (const c of children) signal(c.pid, 'SIGKILL');
    children = [];
    if (ownsDir) rmSync(base, { recursive: true, force: true });
  }
  live.add(killAll);

  function logs() {
    return SERVERS.map((name) => {
      let text = '';
      try {
        text = readFileSync(join(base, `log/${name}.log`), 'utf8');
      } catch {}
      return `--- ${name} server log (last lines)\n${text.split('\n').slice(-15).join('\n')}`;
    }).join('\n');
  }

  async function start() {
    if (children.length > 0) throw new Error('swift-s3: already running');
    for (const [name, port] of Object.entries(ports)) {
      if (await listening(port)) throw new Error(`swift-s3: port ${port} for ${name} is in use`);
    }
    const started = performance.now();
    const user = process.getuid?.() === 0 ? ['-u', 'root'] : [];
    launch('memcached', '/usr/bin/memcached', [
      '-l',
      '127.0.0.1',
      '-p',
      String(ports.memcached),
      '-U',
      '0',
      '-m',
      '16',
      ...user,
    ]);
    for (const name of SERVERS) {
      launch(name, PYTHON, [
        `/usr/bin/swift-${name}-server`,
        join(base, `etc/${name}-server.conf`),
        '-v',
      ]);
    }
    try {
      await waitReady(endpoint, readyTimeoutMs, () => children.length === 0);
    } catch (err) {
      await stop();
      throw new Error(`${err instanceof Error ? err.message : err}\n${logs()}`);
    }
    return performance.now() - started;
  }

  async function destroy() {
    await stop();
    live.delete(killAll);
    if (ownsDir) rmSync(base, { recursive: true, force: true });
  }

  return {
    endpoint,
    region: REGION,
    accessKeyId: ACCESS_KEY_ID,
    secretAccessKey: SECRET_ACCESS_KEY,
    dir: base,
    ports,
    /** PIDs (= process group ids) of the running servers. */
    pids: () => children.map((c) => c.pid),
    start,
    stop,
    destroy,
    logs,
  };
}

/**
 * Cleanups of the servers not yet destroyed. They run when this process exits (also through
 * process.exit) or is stopped by SIGINT/SIGTERM/SIGHUP, which are then re-raised so that the
 * process still ends as the signal says. Only SIGKILL of this process leaves servers behind.
 */
const live = new Set();
process.on('exit', () => {
  for (const cleanup of live) cleanup();
});
for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(name, function onSignal() {
    for (const cleanup of live) cleanup();
    live.clear();
    if (process.listenerCount(name) === 0) process.kill(process.pid, name);
  });
}

function signal(pid, name) {
  try {
    process.kill(-pid, name);
  } catch {}
}

/** A tempauth token and the account's storage URL (Swift's own API). */
async function swiftAuth(endpoint) {
  const auth = await fetch(`${endpoint}/auth/v1.0`, {
    headers: { 'X-Auth-User': ACCESS_KEY_ID, 'X-Auth-Key': SECRET_ACCESS_KEY },
  });
  await auth.arrayBuffer();
  const token = auth.headers.get('x-auth-token');
  const storage = auth.headers.get('x-storage-url');
  if (!auth.ok || !token || !storage) throw new Error(`auth: HTTP ${auth.status}`);
  return { headers: { 'X-Auth-Token': token }, storage };
}

async function swiftRequest(method, url, headers, body) {
  const res = await fetch(url, { method, headers, body });
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`${method} ${url}: HTTP ${res.status}`);
}

/** Creates the bucket (a Swift container) `name`; an existing one is kept. */
export async function createBucket(endpoint, name) {
  const { headers, storage } = await swiftAuth(endpoint);
  await swiftRequest('PUT', `${storage}/${encodeURIComponent(name)}`, headers);
}

/**
 * Waits until the whole chain answers: a tempauth token, then a container PUT and an object PUT
 * through Swift's own API (account, container and object servers all take part), then a DELETE
 * of both.
 */
async function waitReady(endpoint, timeoutMs, gaveUp) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (gaveUp()) throw new Error('swift-s3: servers stopped while starting');
    try {
      const { headers, storage } = await swiftAuth(endpoint);
      const probe = `${storage}/diskube-ready-probe`;
      await swiftRequest('PUT', probe, headers);
      await swiftRequest('PUT', `${probe}/probe`, headers, 'ok');
      await swiftRequest('DELETE', `${probe}/probe`, headers);
      await swiftRequest('DELETE', probe, headers);
      return;
    } catch (err) {
      last =
        err instanceof Error
          ? err.cause instanceof Error
            ? err.cause.message
            : err.message
          : String(err);
    }
    await sleep(200);
  }
  throw new Error(`swift-s3: ${endpoint} did not answer within ${timeoutMs} ms (${last})`);
}

/** Creates a Swift, starts it and returns it with its cold-start time in milliseconds. */
export async function startSwift(options = {}) {
  const swift = await createSwift(options);
  try {
    const coldStartMs = await swift.start();
    return Object.assign(swift, { coldStartMs });
  } catch (err) {
    await swift.destroy();
    throw err;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--bucket');
  const bucket = at > 0 ? process.argv[at + 1] : 'diskube';
  const swift = await startSwift();
  await createBucket(swift.endpoint, bucket);
  process.stdout.write(
    `Swift s3api is up in ${(swift.coldStartMs / 1000).toFixed(1)} s (data in ${swift.dir}, process groups ${swift.pids().join(' ')})\n` +
      `export AWS_ENDPOINT_URL_S3=${swift.endpoint}\n` +
      `export AWS_ACCESS_KEY_ID=${swift.accessKeyId}\n` +
      `export AWS_SECRET_ACCESS_KEY=${swift.secretAccessKey}\n` +
      `export AWS_REGION=${swift.region}\n` +
      `Bucket: s3://${bucket}/ (--s3-endpoint ${swift.endpoint}). Ctrl-C stops every server and removes the data.\n`,
  );
  const shutdown = async () => {
    await swift.destroy();
    process.exit(0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  // The servers are detached children: without a handle of its own this process would end here,
  // and its exit handler would stop them.
  setInterval(() => {}, 2 ** 30);
}
