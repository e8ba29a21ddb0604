import { describe, expect, it } from 'vitest';
import { chooseClient, type PgClient } from '../src/pg/clients.ts';
import { RunError } from '../src/errors.ts';

const client = (major: number): PgClient => ({ major, version: `${major}.1`, binDir: `/usr/lib/postgresql/${major}/bin` });

describe('chooseClient', () => {
  it.each([
    [15, [17, 16, 15, 13], 15, 'same major'],
    [14, [17, 16, 15, 13], 15, 'nearest newer'],
    [12, [17, 13], 13, 'nearest newer'],
    [18, [18], 18, 'same major'],
  ])('server %i with clients %j uses %i (%s)', (server, majors, expected, why) => {
    const choice = chooseClient(server, `${server}.0`, majors.map(client));
    expect(choice.client.major).toBe(expected);
    expect(choice.reason).toContain(why === 'same major' ? 'same major' : 'nearest newer');
  });

  it('refuses a server newer than every client, naming both', () => {
    const call = () => chooseClient(17, '17.10', [client(15), client(13)]);
    expect(call).toThrow(RunError);
    expect(call).toThrow(/server 17\.10.*15\.1 \(\/usr\/lib\/postgresql\/15\/bin\).*13\.1/);
  });

  it('refuses when no client is installed', () => {
    expect(() => chooseClient(15, '15.4', [])).toThrow(/clients found: none/);
  });
});
