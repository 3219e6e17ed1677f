/** LSN arithmetic: a pg_lsn ("16/B374D848") as a number of bytes, so positions compare and subtract as PostgreSQL's do. */
export function lsnValue(lsn: string): bigint {
  const [hi, lo] = lsn.split("/");
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}
