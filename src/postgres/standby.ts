/**
 * pg_standby: makes this host a standby of the primary, by cloning it only when this host does
 * not already hold the cluster's data. The rules that keep data safe:
 * - the same system identifier: already a member; nothing to clone (a writable copy is refused,
 *   and so is a host a failover fenced); with --reclone, a copy that ran as a primary is cloned
 *   over, standby.signal or not;
 * - missing or empty directory, a partial clone pgprov left, or a freshly initialised cluster
 *   with no user database or table: cloned, without asking;
 * - anything else (another cluster's data): refused, unless the user passed --reclone HOST.
 * The clone goes into a directory next to the data directory while the server runs on with its
 * data, and is swapped in only once it is complete: the server stops only for the swap, so a clone
 * that fails, runs out of time or is interrupted never leaves the host without its server and its
 * old data. A side directory such a clone left is removed by the next run.
 */
import { z } from "zod";
import {
  CLONE_SUFFIX,
  type DataDirectory,
  dataDirectoryProbe,
  isFreshCluster,
  parseDataDirectory,
  REPLACED_SUFFIX,
  rewindMark,
  unfinishedRewind,
  wasWritable,
} from "./data-directory.js";
import { flag, unitName, wholeNumber } from "../common/args.js";
import { shellQuote } from "../common/shell.js";
import { type Command, noChange } from "../engine/change.js";
import { type Module, type ModuleContext, TaskFailure } from "../engine/module.js";

export const standbyArgs = z.strictObject({
  /** This host's name in the inventory, for messages. */
  host: z.string().min(1),
  /** An address or DNS name: never one pg_basebackup would read as an option. */
  primary: z.string().regex(/^[A-Za-z0-9:[]/, "an address or a DNS name"),
  port: wholeNumber,
  user: z.string().min(1),
  /** Empty when the cluster uses no slots. */
  slot: z.string().default(""),
  passfile: z.string().regex(/^\//, "an absolute path"),
  /**
   * Connection options that keep the password from any server but the primary: TLS verified
   * against the cluster's CA, channel binding, require_auth (see postgres/debian.ts, conninfoSecurity).
   * Words of letters, digits and path characters only: nothing pg_basebackup could read otherwise.
   */
  conninfo_auth: z
    .string()
    .regex(/^([a-z_]+=[A-Za-z0-9_./-]+( [a-z_]+=[A-Za-z0-9_./-]+)*)?$/, "connection options KEY=VALUE, separated by spaces, or nothing")
    .default(""),
  data_directory: z.string().regex(/^\/.+/, "an absolute path"),
  bin_directory: z.string().regex(/^\/.+/, "an absolute path"),
  service: unitName,
  /** The primary's system identifier, read before the play; empty when it could not be read. */
  primary_system_identifier: z.string().default(""),
  /** The user's consent to replace data that is not this cluster's (--reclone HOST). */
  reclone: flag.default(false),
  /**
   * Clone even a standby of this cluster (`pgprov restore`: the primary was restored to an
   * earlier point, and every standby's data went past it on a history the primary left).
   */
  clone_always: flag.default(false),
  /** Seconds the base backup may take. */
  timeout: wholeNumber.default(3600),
});
export type StandbyArgs = z.output<typeof standbyArgs>;

export const pgStandby: Module<StandbyArgs> = {
  name: "pg_standby",
  args: standbyArgs,

  probe: (args) => dataDirectoryProbe(args.data_directory, args.bin_directory),

  decide(args, state, context) {
    const d = parseDataDirectory(state.stdout);
    const primary = args.primary_system_identifier;
    if (d.replacedLeft) {
      throw new TaskFailure(
        `an interrupted clone left the previous data in ${args.data_directory}${REPLACED_SUFFIX}; pgprov deletes nothing it cannot account for: ` +
          `move it back to ${args.data_directory} (or remove it, if the clone in ${args.data_directory} is wanted), then rerun`,
      );
    }
    const from = `a base backup of ${args.primary}`;
    if (d.rewindUnfinished !== undefined) {
      if (args.reclone) {
        return {
          changes: [{ action: "create", summary: `clone ${from}, REPLACING data an unfinished pg_rewind left (${d.rewindUnfinished}), as --reclone asked`, destructive: true, commands: [cloneCommand(args, context)] }],
        };
      }
      throw new TaskFailure(
        `${args.data_directory} ${unfinishedRewind(d.rewindUnfinished)}. ` +
          `Refusing to touch it: \`pgprov rejoin INVENTORY ${args.host} --reclone\` replaces it with a clone`,
      );
    }
    if (primary && d.systemIdentifier === primary) {
      // standby.signal does not make a former primary a standby: failover's fence and switchover
      // write it before anything is promoted, and its WAL may go past the primary's timeline.
      if (args.clone_always) {
        return {
          changes: [
            {
              action: "create",
              summary: `clone ${from}, REPLACING this standby's data (${describe(d)}): the primary was restored to an earlier point (pgprov restore)`,
              destructive: true,
              commands: [cloneCommand(args, context)],
            },
          ],
        };
      }
      if (args.reclone && (!d.standbySignal || d.fenced !== undefined || wasWritable(d))) {
        return {
          changes: [
            {
              action: "create",
              summary: `clone ${from}, REPLACING data that ran as a primary and may have diverged (${describe(d)}), as --reclone asked`,
              destructive: true,
              commands: [cloneCommand(args, context)],
            },
          ],
        };
      }
      if (d.fenced !== undefined) {
        throw new TaskFailure(
          `${args.data_directory} was fenced by a failover (${d.fenced}): it may hold WAL the primary never received. Refusing to make it a standby as it is: ` +
            `run \`pgprov rejoin INVENTORY ${args.host}\` (pg_rewind), or add --reclone to replace its data with a clone`,
        );
      }
      if (!d.standbySignal) {
        throw new TaskFailure(
          `${args.data_directory} holds this cluster's data but is not a standby (no standby.signal): it may have been promoted and written to (a former primary, say). Refusing to touch it; see \`pgprov status\`. To bring a former primary back as a standby, run \`pgprov rejoin INVENTORY ${args.host}\` (pg_rewind); to replace its data with a fresh clone, rerun with --reclone ${args.host}`,
        );
      }
      if (d.partialClone) {
        const clone = shellQuote(`${args.data_directory}${CLONE_SUFFIX}`);
        return {
          changes: [
            {
              action: "delete",
              summary: `remove ${args.data_directory}${CLONE_SUFFIX}, a clone an interrupted run left (this host is already a standby of this cluster)`,
              commands: [{ script: `rm -rf ${clone}`, display: `rm -rf ${clone}` }],
            },
          ],
        };
      }
      return noChange(`already a standby of this cluster (system identifier ${primary}, timeline ${d.timeline ?? "?"})`);
    }
    if (!d.exists || d.entries === 0) return { changes: [{ action: "create", summary: `clone ${from} into ${args.data_directory} (${d.exists ? "empty" : "missing"})`, commands: [cloneCommand(args, context)] }] };
    if (isFreshCluster(d)) {
      return { changes: [{ action: "create", summary: `clone ${from}, replacing the freshly initialised cluster here (${describe(d)}, no user data)`, commands: [cloneCommand(args, context)] }] };
    }
    if (!primary) {
      throw new TaskFailure(
        `${args.data_directory} holds data (${describe(d)}) and the primary's system identifier cannot be read, so pgprov cannot tell whether it is this cluster's: refusing to touch it`,
      );
    }
    if (args.reclone) {
      return { changes: [{ action: "create", summary: `clone ${from}, REPLACING the data here (${describe(d)}), as --reclone asked`, destructive: true, commands: [cloneCommand(args, context)] }] };
    }
    throw new TaskFailure(
      `${args.data_directory} holds another cluster's data (${describe(d)}; the primary's system identifier is ${primary}). ` +
        `pgprov never replaces data without consent: check it, then rerun with --reclone ${args.host} to replace it with a clone of ${args.primary}`,
    );
  },
};

/**
 * Whether pg_standby replaces this data with a clone without asking (as its `decide` does): no
 * data, an empty directory, or a freshly initialised cluster that is not already the primary's.
 * Such a server is stopped for the swap and started with the clone: restarting it before is wasted.
 */
export function clonedWithoutAsking(d: DataDirectory, primarySystemIdentifier: string | undefined): boolean {
  if (d.replacedLeft) return false;
  if (primarySystemIdentifier && d.systemIdentifier === primarySystemIdentifier) return false;
  return !d.exists || d.entries === 0 || isFreshCluster(d);
}

/** The clone: into a directory beside the data directory, swapped in only when complete. */
function cloneCommand(args: StandbyArgs, context: ModuleContext): Command {
  const data = shellQuote(args.data_directory);
  const clone = shellQuote(`${args.data_directory}${CLONE_SUFFIX}`);
  const old = shellQuote(`${args.data_directory}${REPLACED_SUFFIX}`);
  const basebackup = [
    `${shellQuote(args.bin_directory)}/pg_basebackup`,
    `-h ${shellQuote(args.primary)} -p ${args.port} -U ${shellQuote(args.user)} -w`,
    args.conninfo_auth ? `-d ${shellQuote(args.conninfo_auth)}` : "",
    // -P: its progress on stderr, a line a second, which a terminal shows (Command.progress). Only
    // then: to give a total, the primary first walks its whole data directory (every file's size).
    `-D ${clone} -X stream -c fast${context.progress ? " -P" : ""}`,
    args.slot ? `-S ${shellQuote(args.slot)}` : "",
  ]
    .filter(Boolean)
    .join(" ");
  return {
    script: [
      `rm -rf ${clone}`,
      // Made by postgres, in postgres's directory: root never changes the owner of what a name there points to.
      `runuser -u postgres -- mkdir -m 0700 -- ${clone}`,
      // However the clone ends before the swap (it fails, runs out of time, is interrupted, or
      // its connection is lost), the side directory goes; the server never stopped.
      `trap 'rm -rf ${clone}' EXIT`,
      `trap 'exit 143' TERM INT HUP`,
      // The password comes from the passfile, never from an argument or the environment.
      `runuser -u postgres -- env PGPASSFILE=${shellQuote(args.passfile)} ${basebackup}`,
      `runuser -u postgres -- touch ${clone}/standby.signal`,
      // The swap does not stop halfway: the server is stopped only for it, and runs again after.
      `trap - EXIT`,
      `trap '' TERM INT HUP`,
      `systemctl stop ${shellQuote(args.service)}`,
      // -T: a name there that is a link to a directory is replaced, never moved into.
      `if [ -e ${data} ]; then mv -T ${data} ${old}; fi`,
      `mv -T ${clone} ${data}`,
      // The data an unfinished pg_rewind left is gone with the swap, and its mark with it.
      `rm -f ${shellQuote(rewindMark(args.data_directory))}`,
      `rm -rf ${old}`,
      `systemctl start ${shellQuote(args.service)}`,
    ].join("\n"),
    display: `${basebackup} (then swap into ${args.data_directory} and start ${args.service})`,
    timeoutMs: args.timeout * 1000,
    ...(context.progress ? { progress: BASEBACKUP_PROGRESS } : {}),
  };
}

/** pg_basebackup -P's reports: `waiting for checkpoint`, then `  1234/30000 kB (4%), 0/1 tablespace`. */
export const BASEBACKUP_PROGRESS = {
  line: /^(?:waiting for checkpoint|\s*(\d+)\/(\d+) kB \((\d+)%\), \d+\/\d+ tablespaces?.*)$/,
  show: (m: RegExpExecArray) => (m[1] === undefined ? "waiting for the primary's checkpoint" : `${megabytes(Number(m[1]))} of ${megabytes(Number(m[2]))} copied (${m[3]}%)`),
};

function megabytes(kB: number): string {
  return kB < 1024 ? `${kB} kB` : `${(kB / 1024).toFixed(1)} MB`;
}

function describe(d: DataDirectory): string {
  const parts = [
  d.systemIdentifier ? `system identifier ${d.systemIdentifier}` : "no cluster",
  d.timeline !== undefined ? `timeline ${d.timeline}` : "",
  d.userDatabases ? `${d.userDatabases} user database${d.userDatabases === 1 ? "" : "s"}` : "",
  d.userRelations ? `${d.userRelations} user relation files` : "",
  ];
  return parts.filter(Boolean).join(", ");
}
