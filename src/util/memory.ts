import { readFileSync } from 'node:fs';

/**
 * This process's peak resident memory, MiB. On Linux from VmHWM, the high-water mark of this process
 * image alone: getrusage's maxRSS also counts the parent's memory at the moment it forked us.
 */
export function peakRssMiB(): number {
  try {
    const kib = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (kib !== undefined) return Math.round(Number(kib) / 1024);
  } catch {
    // Not Linux: the rusage figure, an upper bound.
  }
  return Math.round(process.resourceUsage().maxRSS / 1024);
}
