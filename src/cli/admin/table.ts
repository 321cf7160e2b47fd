// Cold path. Plain-text layout for `opengslb-cli`: aligned tables with an
// upper-case header row, and indented key/value blocks. Widths count code
// points, which is right for the ASCII the API returns (names, IP literals).

/** Two spaces between columns, as the Go CLI's tabwriter had. */
const GAP = '  ';

/**
 * Lays out a table: every column as wide as its widest cell, the last column
 * not padded (so lines carry no trailing spaces), each line prefixed with
 * `indent`. Returns the lines joined, with a final newline.
 */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], indent = ''): string {
  const widths = header.map((h) => width(h));
  for (const row of rows) {
    for (let c = 0; c < row.length; c++) widths[c] = Math.max(widths[c] ?? 0, width(row[c]));
  }
  const line = (cells: readonly string[]): string => {
    let out = indent;
    for (let c = 0; c < cells.length; c++) {
      const last = c === cells.length - 1;
      out += last ? cells[c] : cells[c] + ' '.repeat(widths[c] - width(cells[c])) + GAP;
    }
    return out.trimEnd();
  };
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** Lays out `Key:  value` lines, the values aligned after the longest key. */
export function formatFields(fields: readonly (readonly [string, string])[], indent = ''): string {
  const keyWidth = Math.max(0, ...fields.map(([k]) => width(k) + 1));
  return fields.map(([k, v]) => `${indent}${(k + ':').padEnd(keyWidth)}${GAP}${v}`.trimEnd()).join('\n') + '\n';
}

function width(text: string): number {
  return [...text].length;
}
