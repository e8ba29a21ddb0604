import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { FanOut } from '../src/util/fan-out.ts';

/** A sink that collects what it gets, `hwm` bytes at a time, draining only when told. */
function slowSink(hwm = 4): { stream: Writable; data: () => Buffer; release: () => void } {
  const chunks: Buffer[] = [];
  const waiting: (() => void)[] = [];
  let open = false;
  const stream = new Writable({
    highWaterMark: hwm,
    write(chunk: Buffer, _e, callback) {
      chunks.push(chunk);
      if (open) callback();
      else waiting.push(() => callback());
    },
  });
  return { stream, data: () => Buffer.concat(chunks), release: () => ((open = true), waiting.splice(0).forEach((w) => w())) };
}

const collect = () => {
  const chunks: Buffer[] = [];
  return { stream: new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }), data: () => Buffer.concat(chunks) };
};

const input = (parts: string[]) => Readable.from(parts.map((p) => Buffer.from(p)));

describe('FanOut', () => {
  it('writes every chunk to the primary and every secondary; ending ends only the primary', async () => {
    const primary = collect();
    const a = new PassThrough();
    const b = collect();
    const aData: Buffer[] = [];
    a.on('data', (c: Buffer) => aData.push(c));
    let aEnded = false;
    a.on('end', () => (aEnded = true));
    await pipeline(input(['one ', 'two ', 'three']), new FanOut(primary.stream, [a, b.stream]));
    expect(primary.data().toString()).toBe('one two three');
    expect(Buffer.concat(aData).toString()).toBe('one two three');
    expect(b.data().toString()).toBe('one two three');
    expect(aEnded).toBe(false);
  });

  it('waits for a slow secondary (backpressure), and dropping it lets the write go on without it', async () => {
    const primary = collect();
    const slow = slowSink();
    const other = collect();
    const fan = new FanOut(primary.stream, [slow.stream, other.stream]);
    const done = pipeline(input(['aaaa', 'bbbb', 'cccc', 'dddd']), fan);
    await new Promise((r) => setTimeout(r, 20));
    expect(primary.data().length).toBeLessThan(16);
    fan.drop(slow.stream, new Error('target down'));
    await done;
    expect(primary.data().toString()).toBe('aaaabbbbccccdddd');
    expect(other.data().toString()).toBe('aaaabbbbccccdddd');
    expect(fan.secondaryErrors.get(slow.stream)?.message).toBe('target down');
    expect(fan.secondaryErrors.has(other.stream)).toBe(false);
  });

  it('a secondary that errors is dropped on its own; a primary that errors fails the write', async () => {
    const primary = collect();
    const failing = new Writable({ write: (_c, _e, cb) => cb(new Error('upload broke')) });
    const fan = new FanOut(primary.stream, [failing]);
    await pipeline(input(['x', 'y']), fan);
    expect(primary.data().toString()).toBe('xy');
    expect(fan.secondaryErrors.get(failing)?.message).toBe('upload broke');
    const broken = new Writable({ write: (_c, _e, cb) => cb(Object.assign(new Error('ENOSPC'), { syscall: 'write' })) });
    await expect(pipeline(input(['x']), new FanOut(broken, []))).rejects.toThrow(/ENOSPC/);
  });
});
