import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { execa } from 'execa';
import { tempDir, until } from './cli.ts';
import { freePort } from './postgres-server.ts';

/** What a real browser saw of a page. */
export interface BrowserView {
  /** document.body.innerText */
  text: string;
  title: string;
  /** Console errors, uncaught exceptions and browser log errors (CSP violations, failed loads). */
  errors: string[];
  /** The HTTP status of the document. */
  status: number;
}

/**
 * Loads `url` in Debian's headless Chromium, driven over the DevTools protocol (Node's own WebSocket):
 * the page's text as rendered, every console or load error, and a screenshot saved to `screenshot`.
 */
export async function viewInChromium(url: string, options: { headers?: Record<string, string>; screenshot: string }): Promise<BrowserView> {
  const bin = await execa('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { reject: false });
  if (bin.exitCode !== 0) throw new Error('chromium not found: the status page test needs Debian\'s chromium (apt-get install chromium; .ci/run installs it)');
  const port = await freePort();
  const profile = await tempDir('chromium');
  const browser = execa(bin.stdout.trim(), ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', `--remote-debugging-port=${port}`, `--user-data-dir=${profile}`, '--window-size=1280,900', 'about:blank'], { reject: false, all: true });
  try {
    await until('chromium\'s DevTools endpoint', async () => ((await fetch(`http://127.0.0.1:${port}/json/version`).catch(() => undefined))?.ok === true ? true : undefined), 30_000);
    const target = (await (await fetch(`http://127.0.0.1:${port}/json/new?about:blank`, { method: 'PUT' })).json()) as { webSocketDebuggerUrl: string };
    const socket = new WebSocket(target.webSocketDebuggerUrl);
    await new Promise((resolve, reject) => {
      socket.addEventListener('open', resolve, { once: true });
      socket.addEventListener('error', reject, { once: true });
    });
    let nextId = 0;
    const pending = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }>();
    const errors: string[] = [];
    let status = 0;
    let loaded: () => void = () => undefined;
    const load = new Promise<void>((resolve) => (loaded = resolve));
    socket.addEventListener('message', (event) => {
      const msg = JSON.parse(String(event.data)) as { id?: number; result?: Record<string, unknown>; error?: { message: string }; method?: string; params?: any };
      if (msg.id !== undefined) {
        const p = pending.get(msg.id);
        pending.delete(msg.id);
        if (msg.error !== undefined) p?.reject(new Error(msg.error.message));
        else p?.resolve(msg.result ?? {});
        return;
      }
      const params = msg.params;
      if (msg.method === 'Runtime.consoleAPICalled' && (params.type === 'error' || params.type === 'assert')) errors.push(`console: ${JSON.stringify(params.args)}`);
      if (msg.method === 'Runtime.exceptionThrown') errors.push(`exception: ${params.exceptionDetails?.text}`);
      if (msg.method === 'Log.entryAdded' && params.entry?.level === 'error') errors.push(`log: ${params.entry.text} ${params.entry.url ?? ''}`);
      if (msg.method === 'Network.responseReceived' && params.type === 'Document') status = params.response.status;
      if (msg.method === 'Page.loadEventFired') loaded();
    });
    const send = (method: string, params: Record<string, unknown> = {}) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const id = ++nextId;
        pending.set(id, { resolve, reject });
        socket.send(JSON.stringify({ id, method, params }));
      });
    for (const domain of ['Page', 'Runtime', 'Log', 'Network']) await send(`${domain}.enable`);
    if (options.headers !== undefined) await send('Network.setExtraHTTPHeaders', { headers: options.headers });
    await send('Emulation.setDeviceMetricsOverride', { width: 1280, height: 900, deviceScaleFactor: 1, mobile: false });
    await send('Page.navigate', { url });
    await load;
    const evaluate = async (expression: string) => ((await send('Runtime.evaluate', { expression, returnByValue: true })).result as { value: string }).value;
    const text = await evaluate('document.body.innerText');
    const title = await evaluate('document.title');
    const shot = (await send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true })) as { data: string };
    await mkdir(dirname(options.screenshot), { recursive: true });
    await writeFile(options.screenshot, Buffer.from(shot.data, 'base64'));
    socket.close();
    return { text, title, errors, status };
  } finally {
    browser.kill('SIGKILL');
    await browser;
    await rm(profile, { recursive: true, force: true });
  }
}
