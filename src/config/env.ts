// Cold path, main thread. Expands ${VAR} and ${VAR:-default} in the text of a
// config value from the environment, before the value is validated.

/** The environment variables expansion reads; process.env in the server. */
export type Environment = Readonly<Record<string, string | undefined>>;

/**
 * The result of expanding one value: the new text, and whether every character
 * of it came from environment variables (no text of the file, no default), in
 * which case the file does not hold the value. `changed` is false when the
 * text had nothing to expand.
 */
export type ExpandResult =
  | { readonly text: string; readonly changed: boolean; readonly fromEnvOnly: boolean }
  | { readonly error: string };

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const FORMS = 'expected ${NAME} or ${NAME:-default} (write $${ for a literal "${")';

/**
 * Expands `text`: `${NAME}` becomes the variable's value (set but empty gives
 * ""), `${NAME:-default}` the value, or `default` when the variable is unset
 * or empty (as in POSIX sh), and `$${` a literal `${`. A `$` not followed by
 * `{` is kept as it is. Defaults are not expanded again. Never throws; returns
 * `{ error }` for an unset variable without a default, an unterminated `${`,
 * or a reference that is neither form.
 */
export function expandEnv(text: string, env: Environment): ExpandResult {
  if (!text.includes('${')) return { text, changed: false, fromEnvOnly: false };
  let out = '';
  let literalChars = 0;
  let references = 0;
  let i = 0;
  while (i < text.length) {
    const dollar = text.indexOf('$', i);
    if (dollar < 0) {
      out += text.slice(i);
      literalChars += text.length - i;
      break;
    }
    out += text.slice(i, dollar);
    literalChars += dollar - i;
    if (text.startsWith('$${', dollar)) {
      out += '${';
      literalChars += 2;
      i = dollar + 3;
      continue;
    }
    if (text[dollar + 1] !== '{') {
      out += '$';
      literalChars += 1;
      i = dollar + 1;
      continue;
    }
    const close = text.indexOf('}', dollar + 2);
    if (close < 0) return { error: `${JSON.stringify(text)} has a "\${" without its "}", ${FORMS}` };
    const inner = text.slice(dollar + 2, close);
    const sep = inner.indexOf(':-');
    const name = sep < 0 ? inner : inner.slice(0, sep);
    if (!NAME.test(name)) {
      return { error: `"\${${inner}}" is not a variable reference, ${FORMS}; a name is letters, digits and "_", not starting with a digit` };
    }
    const value = env[name];
    references++;
    if (sep >= 0 && (value === undefined || value === '')) {
      const fallback = inner.slice(sep + 2);
      out += fallback;
      literalChars += fallback.length;
    } else if (value === undefined) {
      return { error: `uses \${${name}}, but the environment variable ${name} is not set, expected it set or a default such as \${${name}:-value}` };
    } else {
      out += value;
    }
    i = close + 1;
  }
  return { text: out, changed: true, fromEnvOnly: references > 0 && literalChars === 0 };
}
