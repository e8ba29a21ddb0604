import { access, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { tempDir, until } from './cli.ts';
import { freePort } from './postgres-server.ts';

const SSHD = '/usr/sbin/sshd';

/**
 * A real OpenSSH server (Debian's openssh-server) on 127.0.0.1 and a random port, with throwaway host and
 * client keys and `internal-sftp`, started by the test as root and stopped at the end. `root` logs in
 * with the client key; `password()` adds a throwaway system user that logs in with a password.
 */
export interface TestSftp {
  host: string;
  port: number;
  /** The server's data folder for key logins (root's files go here). */
  dir: string;
  /** Environment for backup-sidecar: key login as root, the host key pinned. */
  env: Record<string, string>;
  hostKeyLine: string;
  /** A second host key, for the mismatch test. */
  otherHostKeyLine: string;
  /** Creates a system user with a password (removed by stop()). */
  password(user: string, password: string): Promise<void>;
  down(): Promise<void>;
  up(): Promise<void>;
  stop(): Promise<void>;
}

export async function startSftp(): Promise<TestSftp> {
  try {
    await access(SSHD);
  } catch {
    throw new Error(`cannot start the SFTP test server: ${SSHD} is missing; install openssh-server (apt-get install openssh-server)`);
  }
  if (process.getuid?.() !== 0) throw new Error('the SFTP test server needs root (sshd checks its files and users)');
  const work = await tempDir('sftp');
  const dir = join(work, 'data');
  await mkdir(dir);
  await mkdir('/run/sshd', { recursive: true });
  for (const name of ['host', 'other', 'client']) await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(work, name)]);
  await writeFile(join(work, 'authorized_keys'), await readFile(join(work, 'client.pub')));
  const port = await freePort();
  await writeFile(
    join(work, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(work, 'host')}`,
      `AuthorizedKeysFile ${join(work, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication yes',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'Subsystem sftp internal-sftp',
      `PidFile ${join(work, 'pid')}`,
      'LogLevel ERROR',
    ].join('\n'),
  );
  let child: ResultPromise | undefined;
  const users: string[] = [];
  const up = async () => {
    child = execa(SSHD, ['-D', '-e', '-f', join(work, 'sshd_config')], { reject: false });
    await until('sshd to listen', async () => {
      const probe = await execa('ssh-keyscan', ['-p', String(port), '127.0.0.1'], { reject: false });
      return probe.stdout.includes('ssh-ed25519') ? true : undefined;
    }, 10_000);
  };
  const down = async () => {
    child?.kill('SIGTERM');
    await child;
    child = undefined;
  };
  await up();
  const hostKeyLine = (await readFile(join(work, 'host.pub'), 'utf8')).trim();
  return {
    host: '127.0.0.1',
    port,
    dir,
    hostKeyLine,
    otherHostKeyLine: (await readFile(join(work, 'other.pub'), 'utf8')).trim(),
    env: {
      SFTP_HOST: '127.0.0.1',
      SFTP_PORT: String(port),
      SFTP_USER: 'root',
      SFTP_IDENTITY_FILE: join(work, 'client'),
      SFTP_PATH: dir,
      SFTP_HOST_KEY: hostKeyLine,
      SFTP_TIMEOUT: '5s',
    },
    password: async (user, password) => {
      await execa('useradd', ['--create-home', '--shell', '/bin/sh', user]);
      users.push(user);
      await execa('chpasswd', { input: `${user}:${password}\n` });
    },
    down,
    up,
    stop: async () => {
      await down();
      for (const user of users) await execa('userdel', ['--remove', user], { reject: false });
      await rm(work, { recursive: true, force: true });
    },
  };
}

/** A TCP proxy in front of a port that can cut every connection once N bytes went upstream. */
export interface CutProxy {
  port: number;
  cutAfter(bytes: number): void;
  stop(): Promise<void>;
}

export async function startCutProxy(upstreamPort: number): Promise<CutProxy> {
  const sockets = new Set<Socket>();
  let budget = Number.POSITIVE_INFINITY;
  const server: Server = createServer((client) => {
    const upstream = createConnection(upstreamPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.on('data', (chunk: Buffer) => {
      budget -= chunk.length;
      if (budget < 0) {
        budget = Number.POSITIVE_INFINITY;
        for (const s of sockets) s.destroy();
        return;
      }
      upstream.write(chunk);
    });
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    cutAfter: (bytes) => {
      budget = bytes;
    },
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
