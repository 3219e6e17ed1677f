/** For tests of YAML loading: write a file, load it, and read the problems without the file name. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import { FileError } from "../../src/common/errors.js";

export function yamlFiles(kind: string, load: (file: string) => unknown) {
  const dir = mkdtempSync(join(tmpdir(), `pgprov-${kind}-`));
  let n = 0;
  const write = (text: string): string => {
    const file = join(dir, `${kind}-${n++}.yml`);
    writeFileSync(file, text);
    return file;
  };
  /** Each problem as `line:col: message`; fails the test when the file loads. */
  const problems = (text: string): string[] => {
    const file = write(text);
    try {
      load(file);
    } catch (e) {
      expect(e).toBeInstanceOf(FileError);
      return (e as FileError).message.split("\n").map((l) => l.replace(`${file}:`, ""));
    }
    throw new Error(`expected the ${kind} to be rejected`);
  };
  return { dir, write, problems };
}

/** The message `f` throws; fails the test when it throws nothing. */
export function thrown(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("expected an error");
}
