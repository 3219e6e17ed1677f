/** Small pieces of shell and of probe parsing that every module uses the same way. */

/** Quote a value for a POSIX shell: the only way values reach a command line. */
export function shellQuote(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Parses `key=value` lines (the format every probe prints); later keys win. */
export function keyValues(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

/**
 * A heredoc that carries `data` into a script through stdin (the script itself travels on
 * stdin), so content and secrets never appear in any process's arguments. Base64 keeps any byte
 * and any line safe from the shell.
 */
export function heredocBase64(data: string | Buffer, target: string): string {
  return `base64 -d > ${target} <<'PGPROV_EOF'\n${base64Lines(data)}PGPROV_EOF`;
}

/**
 * `command` with `data` readable on its file descriptor `fd` (as /dev/fd/N), through a pipe from
 * a heredoc (a pipe too, in dash): unlike a file, nothing is ever on disk to be left behind by a
 * killed run, and unlike an argument, nothing shows in `ps`. Its stdin is /dev/null.
 */
export function withDataOnFd(data: string | Buffer, fd: number, command: string): string {
  return `base64 -d <<'PGPROV_EOF' | ${command} ${fd}<&0 </dev/null\n${base64Lines(data)}PGPROV_EOF`;
}

function base64Lines(data: string | Buffer): string {
  return Buffer.from(data).toString("base64").replace(/.{1,76}/g, "$&\n");
}
