/** A SQL string literal: for the few values pgprov must write into SQL text (batched probes). */
export function sqlLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
