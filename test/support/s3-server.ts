import { createServer, request as httpRequest, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { CreateBucketCommand, S3Client, paginateListObjectsV2 } from '@aws-sdk/client-s3';
import { freePort } from './postgres-server.ts';

export interface ProxyRequest {
  method: string;
  url: string;
  status: number;
}

/**
 * A real S3-compatible server (fauxqs, in this process) on 127.0.0.1, behind an HTTP proxy that records
 * every request and can fail like a real network or store does: refuse connections (server down), cut
 * the connection after some bytes (down in the middle of an upload), or answer 403 AccessDenied.
 */
export interface TestS3 {
  endpoint: string;
  bucket: string;
  /** Environment for backup-sidecar pointing at this server. */
  env: Record<string, string>;
  client: S3Client;
  requests: ProxyRequest[];
  createBucket(name: string): Promise<void>;
  keys(bucket?: string): Promise<string[]>;
  /** Connections are refused until up(). */
  down(): Promise<void>;
  up(): Promise<void>;
  /** Goes down once this many more request-body bytes have passed. */
  cutAfter(bytes: number): void;
  /**
   * Once this many more bytes (request bodies, or response bodies with `direction: 'down'`) have
   * passed, stops forwarding: that connection and every later request stay open and silent, until
   * unstall().
   */
  stallAfter(bytes: number, direction?: 'up' | 'down'): void;
  unstall(): void;
  /** Requests that `match` picks are accepted and never answered, until unstall(). */
  stallWhen(match: (method: string, url: string) => boolean): void;
  /**
   * Requests that `match` picks reach the store, which acts on them, but its answer is withheld (status
   * -3 once the store has answered): a client killed then never learns that it succeeded.
   */
  withholdAnswerWhen(match: (method: string, url: string) => boolean): void;
  /** The next `count` requests fail transiently: 503 SlowDown, or a connection reset without an answer. */
  failNext(count: number, how: 'slowdown' | 'reset'): void;
  /** Every request gets 403 AccessDenied until allow(). */
  deny(): void;
  allow(): void;
  stop(): Promise<void>;
}

const KEY_ID = 'AKIATESTBACKUPSIDECAR';
export const S3_SECRET = 'test-secret-Zx9w-never-in-logs';

export async function startS3(bucket = 'backups'): Promise<TestS3> {
  let fauxqs;
  try {
    const { startFauxqs } = await import('fauxqs');
    fauxqs = await startFauxqs({ port: await freePort(), host: '127.0.0.1', logger: false });
  } catch (error) {
    throw new Error(`cannot start the S3 test server (npm package fauxqs, needs Node >= 22.5; run npm ci): ${(error as Error).message}`);
  }
  const upstream = fauxqs.port;
  const port = await freePort();
  const requests: ProxyRequest[] = [];
  const sockets = new Set<Socket>();
  let denying = false;
  let failures: { count: number; how: 'slowdown' | 'reset' } = { count: 0, how: 'slowdown' };
  let budget = Number.POSITIVE_INFINITY;
  let stall: { budget: number; direction: 'up' | 'down' } | undefined;
  let stalled = false;
  let stallMatch: ((method: string, url: string) => boolean) | undefined;
  let withholdMatch: ((method: string, url: string) => boolean) | undefined;
  let server: Server;

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server = createServer((req, res) => {
        const entry = { method: req.method ?? '', url: req.url ?? '', status: 0 };
        requests.push(entry);
        if (failures.count > 0) {
          failures.count -= 1;
          req.resume();
          if (failures.how === 'reset') {
            entry.status = -1;
            req.socket.destroy();
            return;
          }
          entry.status = 503;
          res.writeHead(503, { 'content-type': 'application/xml', connection: 'close' });
          res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
          return;
        }
        if (stalled || stallMatch?.(entry.method, entry.url) === true) {
          // Accepted, then silent: nothing read, nothing answered.
          entry.status = -2;
          req.pause();
          return;
        }
        if (denying) {
          req.resume();
          entry.status = 403;
          res.writeHead(403, { 'content-type': 'application/xml', connection: 'close' });
          res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>');
          return;
        }
        const forward = httpRequest({ host: '127.0.0.1', port: upstream, method: req.method, path: req.url, headers: req.headers }, (up) => {
          entry.status = up.statusCode ?? 0;
          if (withholdMatch?.(entry.method, entry.url) === true) {
            entry.status = -3;
            up.resume();
            return;
          }
          res.writeHead(up.statusCode ?? 502, up.headers);
          if (stall?.direction !== 'down') {
            up.pipe(res);
            return;
          }
          up.on('data', (chunk: Buffer) => {
            if (stalled) return;
            if (stall !== undefined && (stall.budget -= chunk.length) < 0) {
              stalled = true;
              up.pause();
              return;
            }
            res.write(chunk);
          });
          up.on('end', () => {
            if (!stalled) res.end();
          });
        });
        forward.on('error', () => res.destroy());
        req.on('data', (chunk: Buffer) => {
          if (stalled) return;
          if (stall?.direction === 'up' && (stall.budget -= chunk.length) < 0) {
            stalled = true;
            entry.status = -2;
            req.pause();
            return;
          }
          budget -= chunk.length;
          if (budget < 0) {
            budget = Number.POSITIVE_INFINITY;
            void down();
            return;
          }
          forward.write(chunk);
        });
        req.on('end', () => forward.end());
      });
      server.on('connection', (socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
      });
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });

  const down = async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
  };

  await listen();
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({
    endpoint: `http://127.0.0.1:${upstream}`,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: KEY_ID, secretAccessKey: S3_SECRET },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const createBucket = async (name: string) => {
    await client.send(new CreateBucketCommand({ Bucket: name }));
  };
  await createBucket(bucket);
  return {
    endpoint,
    bucket,
    env: {
      S3_BUCKET: bucket,
      S3_ENDPOINT: endpoint,
      S3_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: KEY_ID,
      AWS_SECRET_ACCESS_KEY: S3_SECRET,
      S3_MAX_ATTEMPTS: '2',
      S3_TIMEOUT: '5s',
    },
    client,
    requests,
    createBucket,
    keys: async (name = bucket) => {
      const keys: string[] = [];
      for await (const page of paginateListObjectsV2({ client }, { Bucket: name })) for (const o of page.Contents ?? []) keys.push(o.Key!);
      return keys.sort();
    },
    down,
    up: listen,
    cutAfter: (bytes) => {
      budget = bytes;
    },
    stallAfter: (bytes, direction = 'up') => {
      stall = { budget: bytes, direction };
    },
    stallWhen: (match) => {
      stallMatch = match;
    },
    withholdAnswerWhen: (match) => {
      withholdMatch = match;
    },
    unstall: () => {
      withholdMatch = undefined;
      stallMatch = undefined;
      stall = undefined;
      stalled = false;
      for (const socket of sockets) socket.destroy();
    },
    failNext: (count, how) => {
      failures = { count, how };
    },
    deny: () => {
      denying = true;
    },
    allow: () => {
      denying = false;
    },
    stop: async () => {
      await down().catch(() => undefined);
      client.destroy();
      await fauxqs.stop();
    },
  };
}
