import type { PostgresConfig } from '../config/config.ts';
import { chooseClient, discoverClients, newestClient, toolVersion, type PgClient } from './clients.ts';
import { serverVersion, type Connection } from './psql.ts';

/** A reachable server and the client tools chosen for it. */
export interface PgServer {
  conn: Connection;
  client: PgClient;
  clientChoice: string;
  serverVersion: string;
  serverMajor: number;
  pgDumpVersion: string;
}

export function connectionOf(cfg: PostgresConfig): Connection {
  return { host: cfg.host, port: cfg.port, user: cfg.user, password: cfg.password };
}

/** Asks the server its version (through `database`) and picks the matching client. */
export async function connectServer(cfg: PostgresConfig, database: string): Promise<PgServer> {
  const clients = await discoverClients(cfg.binDir);
  const conn = connectionOf(cfg);
  const version = await serverVersion(newestClient(clients), conn, database);
  const { client, reason } = chooseClient(version.major, version.text, clients);
  return {
    conn,
    client,
    clientChoice: reason,
    serverVersion: version.text,
    serverMajor: version.major,
    pgDumpVersion: await toolVersion(client, 'pg_dump'),
  };
}
