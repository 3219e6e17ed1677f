/** The last `count` lines of a command's output (its end says why it failed), trailing blank lines dropped. */
export function lastLines(text: string, count: number): string[] {
  return text.trimEnd().split("\n").slice(-count);
}
