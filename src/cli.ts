#!/usr/bin/env -S node --max-semi-space-size=1
// The flag keeps memory flat: streaming gigabytes allocates many short-lived buffers, and V8's default
// young generation lets their backing stores pile up, so peak RSS grew with the database (169 MiB
// instead of 101 MiB at 1 GiB, same speed; see `npm run bench`).

// No static import here: on an older Node.js the libraries fail to load with a TypeError, before any
// check could run. This file only checks the version, then loads the CLI.
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  process.stderr.write(`backup-sidecar: Node.js ${process.versions.node} is too old: it needs 22.12 or newer (24 LTS is what the image ships)\n`);
  process.exit(2);
}
// Started as `node dist/cli.js` (not through the shebang): the same process image again, with the flag
// (execve keeps the PID, stdio and signals; Node.js without process.execve runs on without it).
const FLAG = '--max-semi-space-size=1';
if (!process.execArgv.includes(FLAG) && !(process.env.NODE_OPTIONS ?? '').includes(FLAG) && typeof process.execve === 'function') {
  process.execve(process.execPath, [process.execPath, FLAG, ...process.execArgv, ...process.argv.slice(1)], process.env as Record<string, string>);
}
await import('./main.ts');
