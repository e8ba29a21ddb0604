import { RunError } from '../../errors.ts';

/**
 * A globals file (pg_dumpall --globals-only) read as data, never as a psql script: split into SQL
 * statements by a lexer that agrees with the server's, each statement checked against the few kinds
 * pg_dumpall writes (roles, memberships, tablespaces, their comments and settings). Anything else, and
 * every psql meta-command but the matched `\restrict KEY` / `\unrestrict KEY` pair that current
 * clients put around the file (CVE-2025-8714), refuses the whole file. Pure: no I/O.
 */

type Token =
  | { kind: 'word'; text: string; upper: string }
  | { kind: 'ident'; text: string; name: string }
  | { kind: 'string'; text: string }
  | { kind: 'number' | 'punct'; text: string };

export interface GlobalsStatement {
  /** The statement's text as in the file, without the final ';'. */
  sql: string;
  line: number;
  /** The role a CREATE ROLE / ALTER ROLE is about (its real name), if any. */
  role: string | undefined;
}

export interface ParsedGlobals {
  statements: GlobalsStatement[];
  roles: string[];
  tablespaces: string[];
}

const WORD_START = /[A-Za-z_\u0080-\uffff]/;
const WORD_PART = /[A-Za-z0-9_$\u0080-\uffff]/;
const PUNCT = new Set([',', '(', ')', '=', '.', '-', '+']);
/** Settings a globals file may SET; standard_conforming_strings only to `on`, so '...' literals mean what the lexer thinks. */
const SETTINGS = new Set(['default_transaction_read_only', 'client_encoding', 'standard_conforming_strings', 'xmloption', 'row_security']);

function refuse(line: number, why: string): never {
  throw new RunError(`line ${line}: ${why}; the file is refused and nothing in it was run`);
}

/** The real name of an identifier token: quoted as written, unquoted folded to lower case as the server does. */
function nameOf(token: Token | undefined): string | undefined {
  if (token?.kind === 'ident') return token.name;
  if (token?.kind === 'word') return token.text.toLowerCase();
  return undefined;
}

const words = (tokens: Token[], from: number, ...expected: string[]) =>
  expected.every((w, i) => {
    const t = tokens[from + i];
    return t?.kind === 'word' && t.upper === w;
  });

/** Which allow-listed kind a statement is, with the role or tablespace it creates; refuses any other. */
function classify(tokens: Token[], line: number): { role?: string; createsRole?: string; createsTablespace?: string } {
  const head = tokens.filter((t) => t.kind === 'word').map((t) => (t as { upper: string }).upper);
  if (words(tokens, 0, 'SET')) {
    const name = tokens[1]?.kind === 'word' ? tokens[1].text.toLowerCase() : '';
    const value = tokens[3];
    const op = tokens[2]?.text.toUpperCase();
    if (!SETTINGS.has(name) || (op !== '=' && op !== 'TO') || tokens.length !== 4 || value === undefined || !['word', 'string'].includes(value.kind)) {
      refuse(line, `SET ${name || '…'} is not a setting a globals file makes`);
    }
    if (name === 'standard_conforming_strings' && value.text.replaceAll("'", '').toLowerCase() !== 'on') refuse(line, 'standard_conforming_strings must stay on');
    return {};
  }
  if (words(tokens, 0, 'CREATE', 'ROLE')) return { role: nameOf(tokens[2]), createsRole: nameOf(tokens[2]) };
  if (words(tokens, 0, 'ALTER', 'ROLE')) return { role: nameOf(tokens[2]) };
  if (words(tokens, 0, 'CREATE', 'TABLESPACE')) return { createsTablespace: nameOf(tokens[2]) };
  if (words(tokens, 0, 'ALTER', 'TABLESPACE')) return {};
  if (words(tokens, 0, 'COMMENT', 'ON', 'ROLE') || words(tokens, 0, 'COMMENT', 'ON', 'TABLESPACE')) return {};
  if (words(tokens, 0, 'SECURITY', 'LABEL') && (head.includes('ROLE') || head.includes('TABLESPACE')) && !head.includes('TABLE')) return {};
  if (words(tokens, 0, 'GRANT') || words(tokens, 0, 'REVOKE')) {
    const on = tokens.findIndex((t) => t.kind === 'word' && t.upper === 'ON');
    // Role membership (GRANT role TO role), or privileges on a tablespace or a configuration parameter.
    if (on === -1 || words(tokens, on, 'ON', 'TABLESPACE') || words(tokens, on, 'ON', 'PARAMETER')) return {};
  }
  return refuse(line, `"${head.slice(0, 3).join(' ')}" is not a statement pg_dumpall --globals-only writes (roles, memberships, tablespaces)`);
}

/** Splits and checks a globals file; throws a RunError naming the first line it refuses. */
export function parseGlobals(text: string): ParsedGlobals {
  const statements: GlobalsStatement[] = [];
  const roles: string[] = [];
  const tablespaces: string[] = [];
  let restrictKey: string | undefined;
  let unrestricted = false;
  let tokens: Token[] = [];
  let start = -1;
  let startLine = 1;
  let line = 1;
  let i = 0;
  const at = (k: number) => text[k] ?? '';

  const readQuoted = (quote: string, escapes: boolean): string => {
    const open = line;
    let value = '';
    i++;
    for (;;) {
      if (i >= text.length) refuse(open, `a ${quote === '"' ? 'quoted name' : 'string'} is never closed`);
      const c = at(i);
      if (c === '\n') line++;
      if (escapes && c === '\\') {
        value += at(i + 1);
        if (at(i + 1) === '\n') line++;
        i += 2;
        continue;
      }
      if (c === quote) {
        if (at(i + 1) === quote) {
          value += quote;
          i += 2;
          continue;
        }
        i++;
        return value;
      }
      value += c;
      i++;
    }
  };

  while (i < text.length) {
    const c = at(i);
    if (c === '\n') {
      line++;
      i++;
      continue;
    }
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '-' && at(i + 1) === '-') {
      while (i < text.length && at(i) !== '\n') i++;
      continue;
    }
    if (c === '/' && at(i + 1) === '*') {
      const open = line;
      let depth = 0;
      do {
        if (i >= text.length) refuse(open, 'a /* comment is never closed');
        if (at(i) === '/' && at(i + 1) === '*') {
          depth++;
          i += 2;
        } else if (at(i) === '*' && at(i + 1) === '/') {
          depth--;
          i += 2;
        } else {
          if (at(i) === '\n') line++;
          i++;
        }
      } while (depth > 0);
      continue;
    }
    if (c === '\\') {
      // A psql meta-command. Only the \restrict / \unrestrict pair, each alone on its line, is accepted.
      const end = text.indexOf('\n', i);
      const command = text.slice(i, end === -1 ? text.length : end).trim();
      const m = /^\\(restrict|unrestrict) ([A-Za-z0-9]{1,64})$/.exec(command);
      const lineStart = i === 0 || at(i - 1) === '\n';
      if (m !== null && lineStart && tokens.length === 0 && !unrestricted) {
        if (m[1] === 'restrict' && restrictKey === undefined && statements.length === 0) {
          restrictKey = m[2];
          i += command.length;
          continue;
        }
        if (m[1] === 'unrestrict' && m[2] === restrictKey) {
          unrestricted = true;
          i += command.length;
          continue;
        }
      }
      refuse(line, `psql meta-command ${command.split(/\s/)[0]!.slice(0, 20)} is not allowed in a globals file`);
    }
    if (unrestricted) refuse(line, 'SQL after \\unrestrict');
    if (start === -1) {
      start = i;
      startLine = line;
    }
    if (c === ';') {
      const sql = text.slice(start, i);
      const kind = classify(tokens, startLine);
      statements.push({ sql, line: startLine, role: kind.role });
      if (kind.createsRole !== undefined) roles.push(kind.createsRole);
      if (kind.createsTablespace !== undefined) tablespaces.push(kind.createsTablespace);
      tokens = [];
      start = -1;
      i++;
      continue;
    }
    if ((c === 'E' || c === 'e') && at(i + 1) === "'") {
      i++;
      tokens.push({ kind: 'string', text: readQuoted("'", true) });
      continue;
    }
    if (c === "'") {
      tokens.push({ kind: 'string', text: readQuoted("'", false) });
      continue;
    }
    if (c === '"') {
      const name = readQuoted('"', false);
      tokens.push({ kind: 'ident', text: name, name });
      continue;
    }
    if (WORD_START.test(c)) {
      let j = i + 1;
      while (j < text.length && WORD_PART.test(at(j))) j++;
      const word = text.slice(i, j);
      // U&'…', B'…', X'…' and the like would lex differently: none is in a globals file.
      if (at(j) === "'" || at(j) === '&' || at(j) === '"') refuse(line, `unexpected literal after ${word}`);
      tokens.push({ kind: 'word', text: word, upper: word.toUpperCase() });
      i = j;
      continue;
    }
    if (/[0-9]/.test(c)) {
      let j = i + 1;
      while (j < text.length && /[0-9.]/.test(at(j))) j++;
      tokens.push({ kind: 'number', text: text.slice(i, j) });
      i = j;
      continue;
    }
    if (PUNCT.has(c) && !(c === '-' && at(i + 1) === '-')) {
      tokens.push({ kind: 'punct', text: c });
      i++;
      continue;
    }
    refuse(line, `unexpected character ${JSON.stringify(c)}`);
  }
  if (start !== -1) refuse(startLine, 'the last statement has no closing ";"');
  if (restrictKey !== undefined && !unrestricted) refuse(line, '\\restrict without its matching \\unrestrict');
  return { statements, roles, tablespaces };
}
