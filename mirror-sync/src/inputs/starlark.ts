import { SyncError } from '../errors.js';

/**
 * A small Starlark *expression* reader: enough for `bazel query --output=build`, which prints each rule as a call
 * `kind(attr = value, …)` with literal values (strings, numbers, lists, dicts, None/True/False, `Label("…")`,
 * `select({…})`, `+`). It never evaluates code; values it cannot fold stay as opaque `StarlarkOpaque`.
 * https://github.com/bazelbuild/starlark/blob/master/spec.md#lexical-elements
 */

export type StarlarkValue = string | number | boolean | null | StarlarkValue[] | StarlarkDict | StarlarkOpaque;
export interface StarlarkDict {
  kind: 'dict';
  entries: [StarlarkValue, StarlarkValue][];
}
export interface StarlarkOpaque {
  kind: 'opaque';
  text: string;
}

export interface StarlarkCall {
  callee: string;
  kwargs: Map<string, StarlarkValue>;
  args: StarlarkValue[];
  line: number;
  /** The `# path:line:col` comment bazel prints above the rule, if any. */
  location?: string;
}

type Tok =
  | { t: 'str'; v: string; line: number; col: number }
  | { t: 'num'; v: number; line: number; col: number }
  | { t: 'id'; v: string; line: number; col: number }
  | { t: 'p'; v: string; line: number; col: number }
  | { t: 'comment'; v: string; line: number; col: number }
  | { t: 'eof'; line: number; col: number };

const MAX_INPUT = 64 * 1024 * 1024;

function lex(src: string, source: string): Tok[] {
  if (src.length > MAX_INPUT)
    throw new SyncError('SYNC_INPUT_INVALID', `${source}: larger than ${MAX_INPUT} characters`);
  const toks: Tok[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const fail = (msg: string): never => {
    throw new SyncError('SYNC_INPUT_INVALID', `${source}:${line}:${i - lineStart + 1}: ${msg}`);
  };
  while (i < src.length) {
    const c = src[i]!;
    const col = i - lineStart + 1;
    if (c === '\n') {
      line++;
      i++;
      lineStart = i;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r' || c === '\f') {
      i++;
      continue;
    }
    if (c === '\\' && src[i + 1] === '\n') {
      i += 2;
      line++;
      lineStart = i;
      continue;
    }
    if (c === '#') {
      const end = src.indexOf('\n', i);
      const stop = end < 0 ? src.length : end;
      toks.push({ t: 'comment', v: src.slice(i + 1, stop).trim(), line, col });
      i = stop;
      continue;
    }
    // String literal, with optional r/b prefixes.
    const pre = /^(?:[rR][bB]?|[bB][rR]?)?(['"])/.exec(src.slice(i, i + 3));
    if (pre && (pre[0].length === 1 || /[rRbB]/.test(c))) {
      const raw = /[rR]/.test(pre[0].slice(0, -1));
      const q = pre[1]!;
      let j = i + pre[0].length;
      const triple = src.startsWith(q + q, j);
      const close = triple ? q.repeat(3) : q;
      if (triple) j += 2;
      let out = '';
      const startLine = line;
      for (;;) {
        if (j >= src.length) fail(`unterminated string starting on line ${startLine}`);
        if (src.startsWith(close, j)) {
          j += close.length;
          break;
        }
        const ch = src[j]!;
        if (ch === '\n') {
          if (!triple) fail('newline in string literal');
          line++;
          lineStart = j + 1;
          out += ch;
          j++;
          continue;
        }
        if (ch === '\\') {
          const n = src[j + 1];
          if (n === undefined) fail('unterminated escape');
          if (raw) {
            out += ch + n;
            if (n === '\n') {
              line++;
              lineStart = j + 2;
            }
            j += 2;
            continue;
          }
          const simple: Record<string, string> = {
            n: '\n',
            t: '\t',
            r: '\r',
            '\\': '\\',
            "'": "'",
            '"': '"',
            a: '\x07',
            b: '\b',
            f: '\f',
            v: '\v',
            '\n': '',
          };
          if (n! in simple) {
            if (n === '\n') {
              line++;
              lineStart = j + 2;
            }
            out += simple[n!];
            j += 2;
            continue;
          }
          const hex =
            n === 'x' ? /^[0-9a-fA-F]{2}/ : n === 'u' ? /^[0-9a-fA-F]{4}/ : n === 'U' ? /^[0-9a-fA-F]{8}/ : null;
          if (hex) {
            const mm = hex.exec(src.slice(j + 2));
            if (!mm) fail(`bad \\${n} escape`);
            const cp = parseInt(mm![0], 16);
            if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) fail(`invalid code point in \\${n} escape`);
            out += String.fromCodePoint(cp);
            j += 2 + mm![0].length;
            continue;
          }
          const oct = /^[0-7]{1,3}/.exec(src.slice(j + 1));
          if (oct) {
            out += String.fromCharCode(parseInt(oct[0], 8));
            j += 1 + oct[0].length;
            continue;
          }
          fail(`unknown escape \\${n}`);
        }
        out += ch;
        j++;
      }
      toks.push({ t: 'str', v: out, line: startLine, col });
      i = j;
      continue;
    }
    const num = /^(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)/.exec(src.slice(i, i + 64));
    if (num && /[0-9]/.test(c)) {
      toks.push({ t: 'num', v: Number(num[0].replace(/^0[oO]/, '0o')), line, col });
      i += num[0].length;
      continue;
    }
    const id = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i, i + 256));
    if (id) {
      toks.push({ t: 'id', v: id[0], line, col });
      i += id[0].length;
      continue;
    }
    const p = /^(?:==|!=|<=|>=|\*\*|\/\/|[()[\]{},=:+\-*/%.<>|&;])/.exec(src.slice(i, i + 2));
    if (p) {
      toks.push({ t: 'p', v: p[0], line, col });
      i += p[0].length;
      continue;
    }
    fail(`unexpected character '${c}'`);
  }
  toks.push({ t: 'eof', line, col: i - lineStart + 1 });
  return toks;
}

class Parser {
  private pos = 0;
  private readonly toks: Tok[];
  private depth = 0;

  constructor(
    tokens: Tok[],
    private readonly source: string,
  ) {
    this.toks = tokens;
  }

  private peek(): Tok {
    return this.toks[this.pos]!;
  }

  private next(): Tok {
    return this.toks[this.pos++]!;
  }

  private fail(tok: Tok, msg: string): never {
    throw new SyncError('SYNC_INPUT_INVALID', `${this.source}:${tok.line}:${tok.col}: ${msg}`);
  }

  private isP(v: string): boolean {
    const t = this.peek();
    return t.t === 'p' && t.v === v;
  }

  private expectP(v: string): void {
    const t = this.next();
    if (t.t !== 'p' || t.v !== v) this.fail(t, `expected '${v}'`);
  }

  /** Top level: a sequence of call statements, each optionally preceded by comments. */
  parseFile(): StarlarkCall[] {
    const calls: StarlarkCall[] = [];
    let lastComment: string | undefined;
    for (;;) {
      const t = this.peek();
      if (t.t === 'eof') return calls;
      if (t.t === 'comment') {
        lastComment = t.v;
        this.pos++;
        continue;
      }
      if (t.t === 'p' && t.v === ';') {
        this.pos++;
        continue;
      }
      if (t.t !== 'id') this.fail(t, 'expected a rule call');
      const callee = this.dotted();
      const open = this.peek();
      if (open.t !== 'p' || open.v !== '(') this.fail(open, `expected '(' after '${callee}'`);
      const call = this.callArgs(callee, t.line);
      if (lastComment !== undefined) call.location = lastComment;
      lastComment = undefined;
      calls.push(call);
    }
  }

  private dotted(): string {
    let name = (this.next() as { v: string }).v;
    while (this.isP('.')) {
      this.pos++;
      const t = this.next();
      if (t.t !== 'id') this.fail(t, 'expected an identifier after "."');
      name += `.${t.v}`;
    }
    return name;
  }

  private skipComments(): void {
    while (this.peek().t === 'comment') this.pos++;
  }

  private callArgs(callee: string, line: number): StarlarkCall {
    this.expectP('(');
    const kwargs = new Map<string, StarlarkValue>();
    const args: StarlarkValue[] = [];
    for (;;) {
      this.skipComments();
      if (this.isP(')')) {
        this.pos++;
        return { callee, kwargs, args, line };
      }
      const t = this.peek();
      const after = this.toks[this.pos + 1]!;
      if (t.t === 'id' && after.t === 'p' && after.v === '=') {
        this.pos += 2;
        if (kwargs.has(t.v)) this.fail(t, `duplicate argument '${t.v}'`);
        kwargs.set(t.v, this.expr());
      } else {
        args.push(this.expr());
      }
      this.skipComments();
      if (this.isP(',')) this.pos++;
      else if (!this.isP(')')) this.fail(this.peek(), "expected ',' or ')'");
    }
  }

  private expr(): StarlarkValue {
    if (++this.depth > 64) this.fail(this.peek(), 'nesting too deep');
    let v = this.primary();
    while (this.isP('+')) {
      this.pos++;
      const r = this.primary();
      if (typeof v === 'string' && typeof r === 'string') v = v + r;
      else if (Array.isArray(v) && Array.isArray(r)) v = [...v, ...r];
      else v = { kind: 'opaque', text: 'binary +' };
    }
    this.depth--;
    return v;
  }

  private primary(): StarlarkValue {
    this.skipComments();
    const t = this.next();
    switch (t.t) {
      case 'str':
        return t.v;
      case 'num':
        return t.v;
      case 'p':
        if (t.v === '-') {
          const n = this.primary();
          return typeof n === 'number' ? -n : { kind: 'opaque', text: 'unary -' };
        }
        if (t.v === '[') return this.seq(']');
        if (t.v === '(') {
          const items = this.seq(')');
          return items.length === 1 ? items[0]! : items;
        }
        if (t.v === '{') return this.dict();
        return this.fail(t, `unexpected '${t.v}'`);
      case 'id': {
        if (t.v === 'None') return null;
        if (t.v === 'True') return true;
        if (t.v === 'False') return false;
        this.pos--;
        const name = this.dotted();
        if (this.isP('(')) {
          const call = this.callArgs(name, t.line);
          if (name === 'Label' && call.args.length === 1 && typeof call.args[0] === 'string') return call.args[0];
          return { kind: 'opaque', text: `${name}(…)` };
        }
        return { kind: 'opaque', text: name };
      }
      default:
        return this.fail(t, 'unexpected end of input');
    }
  }

  private seq(close: string): StarlarkValue[] {
    const out: StarlarkValue[] = [];
    for (;;) {
      this.skipComments();
      if (this.isP(close)) {
        this.pos++;
        return out;
      }
      out.push(this.expr());
      this.skipComments();
      if (this.isP(',')) this.pos++;
      else if (!this.isP(close)) this.fail(this.peek(), `expected ',' or '${close}'`);
    }
  }

  private dict(): StarlarkDict {
    const entries: [StarlarkValue, StarlarkValue][] = [];
    for (;;) {
      this.skipComments();
      if (this.isP('}')) {
        this.pos++;
        return { kind: 'dict', entries };
      }
      const k = this.expr();
      this.expectP(':');
      entries.push([k, this.expr()]);
      this.skipComments();
      if (this.isP(',')) this.pos++;
      else if (!this.isP('}')) this.fail(this.peek(), "expected ',' or '}'");
    }
  }
}

/** Parses a file of top-level calls (bazel query --output=build, or a WORKSPACE-like list of rules). */
export function parseStarlarkCalls(src: string, source: string): StarlarkCall[] {
  return new Parser(lex(src, source), source).parseFile();
}
