/** Hides the user and password of every URL in a text (`https://user:pass@host` → `https://***@host`). */
export function maskUrlCredentials(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^/\s@]+@/gi, '$1***@');
}
