/**
 * apt: Debian packages present or absent. The package lists are refreshed only when an install
 * needs them (none yet, older than `cache_valid_time`, or a package apt cannot find), and an apt
 * proxy from the inventory reaches apt through a pipe, never a file or an argument.
 */
import { z } from "zod";
import { flag, wholeNumber } from "../common/args.js";
import { type Change, type Command, noChange } from "../engine/change.js";
import type { Module, ProbeOutput, ProbeReader } from "../engine/module.js";
import { shellQuote, withDataOnFd } from "../common/shell.js";

const packageName = z.string().regex(/^[a-z0-9][a-z0-9+.-]*(=[A-Za-z0-9.+~:-]+)?$/, "a Debian package name");

export const aptArgs = z.strictObject({
  packages: z.union([packageName, z.array(packageName).min(1)]).transform((p) => (Array.isArray(p) ? p : [p])),
  state: z.enum(["present", "absent"]).default("present"),
  /** Seconds the package lists stay fresh enough for an install. */
  cache_valid_time: wholeNumber.default(86_400),
  install_recommends: flag.default(false),
});
export type AptArgs = z.output<typeof aptArgs>;

const INSTALL_TIMEOUT_MS = 900_000;

/**
 * dpkg was stopped halfway (a run killed or interrupted during an install): its journal holds
 * updates, or a package is left unpacked or half-configured. apt refuses to work until
 * `dpkg --configure -a` has finished the job. Read without a process for the journal (a glob) and
 * with one grep of the status file for the states `dpkg --audit` reports (which would load
 * dpkg's whole database in every check): halfway, awaiting triggers, or in need of a reinstall.
 */
const DPKG_INTERRUPTED = [
  `{ for f in /var/lib/dpkg/updates/* /var/lib/dpkg/updates/.[!.]*; do [ ! -e "$f" ] || break; done; [ -e "$f" ]; }`,
  `grep -Eq '^Status: [a-z]+ (reinstreq [a-z-]+|[a-z]+ (half-installed|unpacked|half-configured|triggers-awaited|triggers-pending))$' /var/lib/dpkg/status`,
].join(" || ");
const DPKG_REPAIR = `if ${DPKG_INTERRUPTED}; then DEBIAN_FRONTEND=noninteractive dpkg --force-confdef --force-confold --configure -a; fi`;

/** What dpkg knows of every package of a batch, in one dpkg-query: "pkg=name status version" lines. */
const dpkgReader: ProbeReader<string[]> = {
  name: "dpkg",
  script: (items) =>
    // Unknown packages print nothing (and make dpkg-query exit 1, which says nothing more).
    [
      `dpkg-query -W -f='pkg=\${Package} \${db:Status-Status} \${Version}\\n' ${[...new Set(items.flat())].map(shellQuote).join(" ")} 2>/dev/null`,
      `if ${DPKG_INTERRUPTED}; then echo dpkg_interrupted=yes; fi`,
    ].join("\n"),
  split: (output, items) => items.map(() => output),
};

export interface AptOptions {
  /** The inventory's `apt.proxy`: reaches apt through a pipe, never a file or an argument. */
  proxy?: string;
}

export function aptModule(options: AptOptions = {}): Module<AptArgs> {
  return {
    name: "apt",
    args: aptArgs,

    probe: (args) => ({ reader: dpkgReader, item: args.packages.map((p) => p.split("=")[0]!) }),

    decide(args, state) {
      const installed = installedPackages(state);
      const name = (p: string) => p.split("=")[0]!;
      const version = (p: string) => p.split("=")[1];
      const repair: Omit<Change, "commands">[] = /^dpkg_interrupted=yes$/m.test(state.stdout)
        ? [{ action: "run", summary: "finish the package changes an interrupted run left (dpkg --configure -a)" }]
        : [];
      // One apt command does it all, the repair first: the first change carries it.
      const carried = (changes: Omit<Change, "commands">[], packages: string[]) => ({
        changes: changes.map((c, k) => ({ ...c, commands: k === 0 ? [aptCommand(args, packages, options)] : [] })),
      });
      if (args.state === "present") {
        const missing = args.packages.filter((p) => {
          const have = installed.get(name(p));
          return have === undefined || (version(p) !== undefined && have !== version(p));
        });
        if (missing.length === 0 && repair.length === 0) return noChange(`installed: ${args.packages.map((p) => `${name(p)} ${installed.get(name(p))}`).join(", ")}`);
        return carried([...repair, ...(missing.length ? [{ action: "create" as const, summary: `install ${missing.join(" ")}` }] : [])], missing);
      }
      const present = args.packages.filter((p) => installed.has(name(p)));
      if (present.length === 0 && repair.length === 0) return noChange(`not installed: ${args.packages.join(", ")}`);
      return carried([...repair, ...(present.length ? [{ action: "delete" as const, summary: `remove ${present.join(" ")}` }] : [])], present);
    },
  };
}

function aptCommand(args: AptArgs, packages: string[], options: AptOptions): Command {
  const proxy = options.proxy;
  const targets = packages.map(shellQuote).join(" ");
  // dpkg without a pty stays in the script's session, so ending the session ends it too.
  // The proxy (which may carry a password) reaches apt as a configuration file it reads from a
  // pipe (-c /dev/fd/4), anew for each apt-get: never a file on the host that a killed run
  // could leave behind, never an argument.
  const run = `DEBIAN_FRONTEND=noninteractive apt-get -q -y${proxy ? " -c /dev/fd/4" : ""} -o DPkg::Lock::Timeout=120 -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"`;
  const proxyConfig = `Acquire::http::Proxy "${proxy}";\nAcquire::https::Proxy "${proxy}";\n`;
  const setup = ["pgprov_apt_get() {", proxy ? withDataOnFd(proxyConfig, 4, run) : run, "}"];
  const aptGet = "pgprov_apt_get";
  if (args.state === "absent") {
    const remove = targets ? [`${aptGet} remove ${targets}`] : [];
    return { script: [...setup, DPKG_REPAIR, ...remove].join("\n"), display: `apt-get remove ${targets}`, timeoutMs: INSTALL_TIMEOUT_MS, letFinish: true };
  }
  const install = `${aptGet} install ${args.install_recommends ? "" : "--no-install-recommends "}${targets}`;
  const stale = `[ -z "$(ls /var/lib/apt/lists/ | grep _Packages)" ] || [ $(( $(date +%s) - $(stat -c %Y /var/lib/apt/lists/*_Packages | sort -n | tail -1) )) -gt ${args.cache_valid_time} ]`;
  return {
    // Refresh first when the lists are missing or stale; refresh and retry once when apt
    // cannot find a package in lists that looked fresh enough.
    script: [...setup, DPKG_REPAIR, ...(targets ? [`if ${stale}; then ${aptGet} update; fi`, `${install} || { ${aptGet} update && ${install}; }`] : [])].join("\n"),
    display: `apt-get install ${args.install_recommends ? "" : "--no-install-recommends "}${targets}${proxy ? " (through the inventory's apt proxy)" : ""}`,
    timeoutMs: INSTALL_TIMEOUT_MS,
    letFinish: true,
  };
}

function installedPackages(state: ProbeOutput): Map<string, string> {
  const installed = new Map<string, string>();
  for (const line of state.stdout.split("\n")) {
    const m = /^pkg=(\S+) (\S+) (\S*)$/.exec(line);
    if (m && m[2] === "installed") installed.set(m[1]!, m[3]!);
  }
  return installed;
}
