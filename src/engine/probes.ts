/**
 * Reading a host: the probes of many tasks (and the act's commands before them, and the facts
 * script) as one batch, one round trip. Probes are keyed by what they read, so the same probe in
 * two tasks runs once, and a probe read ahead can be matched to the task that needs it later.
 * Shared probes (see ProbeReader) of one reader become one section for all their items.
 */
import type { Section, SectionResult } from "./batch.js";
import { FACTS_SCRIPT, type Facts, parseFacts } from "./facts.js";
import type { HostIO } from "./host-io.js";
import type { Probe, ProbeOutput, ProbeReader } from "./module.js";

export const PROBE_TIMEOUT_MS = 60_000;

/** What a probe reads, as a string: equal keys read the same state the same way. */
export function probeKey(probe: Probe): string {
  return typeof probe === "string" ? `sh\n${probe}` : `${probe.reader.name}\n${JSON.stringify(probe.item)}`;
}

export interface ReadOptions {
  /** Add the facts script (after `before`). */
  facts: boolean;
  /** An act's commands, run first; a failing one stops the batch. */
  before?: Section[];
  timeoutMs?: number;
  purpose: string;
  /** See BatchOptions.graceSeconds. */
  graceSeconds?: number;
  onStderr?: (text: string) => void;
}

export interface ReadResult {
  /** By probe key; missing when the batch stopped before the probe (a failed act). */
  outputs: Map<string, ProbeOutput>;
  facts?: Facts;
  before: SectionResult[];
}

export async function readProbes(io: HostIO, probes: Probe[], options: ReadOptions): Promise<ReadResult> {
  const before = options.before ?? [];
  const unique = new Map<string, Probe>();
  for (const probe of probes) unique.set(probeKey(probe), probe);

  // One section per shell probe; one per shared reader, its items in order.
  const parts: { keys: string[]; section: Section; split: (out: ProbeOutput) => ProbeOutput[] }[] = [];
  const shared = new Map<string, { reader: ProbeReader<unknown>; keys: string[]; items: unknown[] }>();
  for (const [key, probe] of unique) {
    if (typeof probe === "string") {
      parts.push({ keys: [key], section: { script: probe }, split: (out) => [out] });
    } else {
      const group = shared.get(probe.reader.name) ?? { reader: probe.reader, keys: [], items: [] };
      shared.set(probe.reader.name, group);
      group.keys.push(key);
      group.items.push(probe.item);
    }
  }
  for (const { reader, keys, items } of shared.values()) {
    parts.push({ keys, section: { script: reader.script(items) }, split: (out) => reader.split(out, items) });
  }

  if (before.length === 0 && parts.length === 0 && !options.facts) return { outputs: new Map(), before: [] };
  const head = options.facts ? [{ script: FACTS_SCRIPT }] : [];
  const started = performance.now();
  const results = await io.run([...before, ...head, ...parts.map((p) => p.section)], {
    timeoutMs: options.timeoutMs ?? PROBE_TIMEOUT_MS,
    purpose: options.purpose,
    ...(options.graceSeconds ? { graceSeconds: options.graceSeconds } : {}),
    ...(options.onStderr ? { onStderr: options.onStderr } : {}),
  });
  const roundTrip = { ms: Math.round(performance.now() - started), checks: unique.size };
  const outputs = new Map<string, ProbeOutput>();
  parts.forEach((part, n) => {
    const r = results[before.length + head.length + n]!;
    if (!r.ran) return;
    const split = part.split({ stdout: r.stdout, stderr: r.stderr, code: r.code });
    part.keys.forEach((key, k) => outputs.set(key, { ...split[k]!, roundTrip }));
  });
  const factsResult = options.facts ? results[before.length] : undefined;
  return {
    outputs,
    ...(factsResult?.ran ? { facts: parseFacts(factsResult.stdout) } : {}),
    before: results.slice(0, before.length),
  };
}
