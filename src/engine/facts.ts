/**
 * Facts: what pgprov knows about a host without being told. A fact is a line of shell output;
 * the script is tiny, and it rides along in every play's check batch, so facts are always
 * current and cost no round trip of their own (except the very first time, see engine/run.ts).
 */
import { keyValues } from "../common/shell.js";

export interface Facts {
  os_id: string;
  os_version: string;
  os_codename: string;
  arch: string;
  hostname: string;
  cpus: number;
  memory_mb: number;
}

export const FACT_KEYS: (keyof Facts)[] = ["os_id", "os_version", "os_codename", "arch", "hostname", "cpus", "memory_mb"];

export const FACTS_SCRIPT = [
  `. /etc/os-release 2>/dev/null`,
  `echo "os_id=$ID"; echo "os_version=$VERSION_ID"; echo "os_codename=$VERSION_CODENAME"`,
  `echo "arch=$(dpkg --print-architecture 2>/dev/null || uname -m)"`,
  // Shell builtins where they do: the facts ride along in every batch.
  `read -r h < /proc/sys/kernel/hostname; echo "hostname=$h"; echo "cpus=$(nproc)"`,
  `while read -r k v _; do case $k in MemTotal:) echo "memory_mb=$((v / 1024))" ;; esac; done < /proc/meminfo`,
].join("\n");

export function parseFacts(stdout: string): Facts {
  const kv = keyValues(stdout);
  return {
    os_id: kv.os_id ?? "",
    os_version: kv.os_version ?? "",
    os_codename: kv.os_codename ?? "",
    arch: kv.arch ?? "",
    hostname: kv.hostname ?? "",
    cpus: Number(kv.cpus) || 0,
    memory_mb: Number(kv.memory_mb) || 0,
  };
}

export function sameFacts(a: Facts | undefined, b: Facts): boolean {
  return a !== undefined && FACT_KEYS.every((k) => a[k] === b[k]);
}
