// A small, strict XML reader for OCF meta-data. Meta-data is plain XML (elements, attributes,
// text, entities, comments, an optional prolog and DOCTYPE): that is all this supports, and
// anything malformed is refused with a line number instead of being guessed at.

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  /** Concatenated character data directly inside this element (entities decoded). */
  text: string;
  /** 1-based line of the start tag, for messages. */
  line: number;
}

export class XmlError extends Error {
  readonly line: number;
  constructor(message: string, line: number) {
    super(`line ${line}: ${message}`);
    this.name = 'XmlError';
    this.line = line;
  }
}

const NAME_START = /[A-Za-z_:]/;
const NAME_RE = /[A-Za-z_:][-A-Za-z0-9._:]*/y;
const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

export function parseXml(xml: string): XmlElement {
  let i = xml.charCodeAt(0) === 0xfeff ? 1 : 0; // BOM
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;

  const lineAt = (pos: number): number => {
    let n = 1;
    for (let k = 0; k < pos && k < xml.length; k++) if (xml.charCodeAt(k) === 10) n++;
    return n;
  };
  const fail = (msg: string, pos = i): never => {
    throw new XmlError(msg, lineAt(pos));
  };
  const expectEnd = (end: string, what: string): number => {
    const k = xml.indexOf(end, i);
    if (k < 0) fail(`unterminated ${what}`);
    return k;
  };
  const decode = (raw: string, pos: number): string =>
    raw.replace(/&([^;\s&<]*);?/g, (whole: string, ent: string) => {
      if (!whole.endsWith(';')) fail(`bare '&' (write &amp;)`, pos);
      if (ent.startsWith('#')) {
        const code = ent[1] === 'x' ? parseInt(ent.slice(2), 16) : parseInt(ent.slice(1), 10);
        if (!Number.isFinite(code) || code < 1 || code > 0x10ffff || !/^#(x[0-9A-Fa-f]+|[0-9]+)$/.test(ent)) {
          fail(`bad character reference &${ent};`, pos);
        }
        return String.fromCodePoint(code);
      }
      const v = PREDEFINED[ent];
      if (v === undefined) fail(`unknown entity &${ent};`, pos);
      return v as string;
    });
  const readName = (): string => {
    NAME_RE.lastIndex = i;
    const m = NAME_RE.exec(xml);
    if (!m) return fail('expected a name');
    i = NAME_RE.lastIndex;
    return m[0];
  };
  const skipSpace = (): void => {
    while (i < xml.length && /\s/.test(xml[i] as string)) i++;
  };
  const addText = (text: string, pos: number): void => {
    const top = stack[stack.length - 1];
    if (top) top.text += text;
    else if (text.trim() !== '') fail(root ? 'text after the root element' : 'text before the root element', pos);
  };

  while (i < xml.length) {
    if (xml[i] !== '<') {
      const start = i;
      const k = xml.indexOf('<', i);
      i = k < 0 ? xml.length : k;
      addText(decode(xml.slice(start, i), start), start);
      continue;
    }
    if (xml.startsWith('<?', i)) {
      i = expectEnd('?>', 'processing instruction') + 2;
    } else if (xml.startsWith('<!--', i)) {
      i = expectEnd('-->', 'comment') + 3;
    } else if (xml.startsWith('<![CDATA[', i)) {
      const start = i;
      if (stack.length === 0) fail('CDATA outside the root element');
      const k = expectEnd(']]>', 'CDATA section');
      addText(xml.slice(i + 9, k), start);
      i = k + 3;
    } else if (xml.startsWith('<!DOCTYPE', i)) {
      if (root || stack.length > 0) fail('DOCTYPE after the root element started');
      // Skip an internal subset in brackets, if any, then the closing '>'.
      const bracket = xml.indexOf('[', i);
      const close = expectEnd('>', 'DOCTYPE');
      i = bracket >= 0 && bracket < close ? xml.indexOf(']', bracket) : i;
      if (i < 0) fail('unterminated DOCTYPE internal subset');
      i = expectEnd('>', 'DOCTYPE') + 1;
    } else if (xml.startsWith('</', i)) {
      const start = i;
      i += 2;
      const name = readName();
      skipSpace();
      if (xml[i] !== '>') fail(`expected '>' to close </${name}`);
      i++;
      const top = stack.pop();
      if (!top) fail(`closing tag </${name}> without an open element`, start);
      else if (top.name !== name) fail(`closing tag </${name}> does not match <${top.name}> opened on line ${top.line}`, start);
    } else {
      const start = i;
      i++;
      if (!NAME_START.test(xml[i] ?? '')) fail(`'<' not followed by a tag name (write &lt;)`);
      const el: XmlElement = { name: readName(), attrs: {}, children: [], text: '', line: lineAt(start) };
      for (;;) {
        const before = i;
        skipSpace();
        if (xml.startsWith('/>', i) || xml[i] === '>') break;
        if (i === before) fail(`expected whitespace, '>' or '/>' in <${el.name}>`);
        if (i >= xml.length) fail(`unterminated start tag <${el.name}>`, start);
        const attr = readName();
        skipSpace();
        if (xml[i] !== '=') fail(`attribute ${attr} of <${el.name}> has no value`);
        i++;
        skipSpace();
        const q = xml[i];
        if (q !== '"' && q !== "'") fail(`value of attribute ${attr} of <${el.name}> is not quoted`);
        const end = xml.indexOf(q as string, i + 1);
        if (end < 0) fail(`unterminated value of attribute ${attr} of <${el.name}>`);
        const raw = xml.slice(i + 1, end);
        if (raw.includes('<')) fail(`'<' inside the value of attribute ${attr} of <${el.name}>`);
        if (Object.hasOwn(el.attrs, attr)) fail(`duplicate attribute ${attr} in <${el.name}>`);
        el.attrs[attr] = decode(raw, i);
        i = end + 1;
      }
      const parent = stack[stack.length - 1];
      if (parent) parent.children.push(el);
      else if (root) fail(`second root element <${el.name}> (the first was <${root.name}>)`, start);
      else root = el;
      if (xml.startsWith('/>', i)) i += 2;
      else {
        i++;
        stack.push(el);
      }
    }
  }
  const open = stack[stack.length - 1];
  if (open) fail(`<${open.name}> opened on line ${open.line} is never closed`, xml.length);
  if (!root) fail('no root element (empty document?)', 0);
  return root as XmlElement;
}

/** Children of `el` named `name`. */
export function childrenNamed(el: XmlElement, name: string): XmlElement[] {
  return el.children.filter((c) => c.name === name);
}
