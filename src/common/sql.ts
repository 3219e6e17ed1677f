/** A SQL string literal: for the few values pgprov must write into SQL text (batched probes). */
export function sqlLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** A SQL identifier, always quoted: a name that is also a keyword (`user`, `order`) stays a name. */
export function sqlIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
