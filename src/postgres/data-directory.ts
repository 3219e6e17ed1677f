/**
 * What a host's PostgreSQL data directory holds, read from files (it works whether the server
 * runs or not, and before pgprov can log in): the cluster's system identifier and timeline from
 * pg_control, whether it is a standby, whether it holds user data, and whether pgprov left a
 * partial clone. Safety decisions (never re-clone over data, never two primaries) rest on this.
 */
import { keyValues, shellQuote } from "../common/shell.js";
import { type HistoryEntry, parseTimelineHistory } from "./timeline-history.js";

/** pgprov clones into this directory next to the data directory, then swaps it into place. */
export const CLONE_SUFFIX = ".pgprov-clone";
/** During the swap, the data being replaced waits here until the clone is in place. */
export const REPLACED_SUFFIX = ".pgprov-replaced";
/**
 * failover writes this beside standby.signal when it fences the old primary: its WAL may go past
 * where the promoted standby's timeline begins, so it cannot simply follow; `pgprov rejoin` must
 * rewind or clone it first, and removes the mark then. Its one line says when, from where, and
 * which host was promoted.
 */
export const FENCE_MARKER = "pgprov.fenced";
/** pgprov's own marks on a host: a directory only root writes, so no link there can redirect root. */
export const HOST_STATE_DIRECTORY = "/var/lib/pgprov";
/**
 * rejoin writes this file before pg_rewind starts, and removes it once the rewind is done and
 * standby.signal written. pg_rewind deletes whatever in the data directory the source lacks
 * (standby.signal and FENCE_MARKER included) and leaves a mix of both servers' files when it stops
 * part-way (a failure, a timeout, a lost connection): outside the data directory, this mark
 * survives that. While it is there, the server does not start (the boot check), apply refuses
 * the host, and only a clone (`rejoin --reclone`) replaces the data.
 */
/**
 * What an unfinished pg_rewind's mark means, worded once for every refusal that meets one (rejoin,
 * the standby module, the safety gate): the subject and the way out differ, the reason does not.
 */
export function unfinishedRewind(mark: string): string {
  return `holds data a pg_rewind began to rewrite and did not finish (${mark}): it may be a mix of two servers' files`;
}

export function rewindMark(dataDirectory: string): string {
  return `${HOST_STATE_DIRECTORY}/rewinding${dataDirectory.replaceAll("/", "-")}`;
}
/** The first OID of user objects (FirstNormalObjectId): system catalogs are below it. */
const FIRST_USER_OID = 16384;

export interface DataDirectory {
  exists: boolean;
  /** Files and directories in it; 0 when empty or missing. */
  entries: number;
  /** From PG_VERSION, when the directory holds a cluster. */
  majorVersion?: number;
  systemIdentifier?: string;
  /** "in production", "in archive recovery", "shut down", "shut down in recovery", ... */
  state?: string;
  /** The latest of pg_control's and the newest timeline history file's. */
  timeline?: number;
  standbySignal: boolean;
  running: boolean;
  /** A clone pgprov started and did not finish. */
  partialClone: boolean;
  /** Data a swap moved aside and did not get to remove: a clone was interrupted mid-swap. */
  replacedLeft: boolean;
  /** Databases besides template0, template1 and postgres. */
  userDatabases: number;
  /** Relation files with an OID of a user object, in any database; counted only while nextOid is below 16384. */
  userRelations: number;
  /** Tablespaces (links in pg_tblspc): data outside the data directory. */
  tablespaces: number;
  /** The next OID as of the last checkpoint: below 16384 until any user object was ever made. */
  nextOid?: number;
  /** pg_control's latest checkpoint: after a clean shutdown as a primary, where its WAL ends. */
  checkpointLsn?: string;
  /** The ancestors of its timeline, from the newest NNNNNNNN.history in pg_wal. */
  history?: HistoryEntry[];
  /** FENCE_MARKER's line, when a failover fenced this host and no rejoin has brought it back since. */
  fenced?: string;
  /** rewindMark's line: a pg_rewind began on this data and did not finish. */
  rewindUnfinished?: string;
}

export function dataDirectoryProbe(dataDirectory: string, binDirectory: string): string {
  const d = shellQuote(dataDirectory);
  const bin = shellQuote(binDirectory);
  // Shell builtins wherever they do (globs, read, test): this runs on every host in every run.
  return [
    `d=${d}`,
    // n: the entries of a directory ($1), hidden ones included, as ls -A counts them.
    `pgprov_count() { n=0; for f in "$1"/* "$1"/.[!.]* "$1"/..?*; do if [ -e "$f" ] || [ -L "$f" ]; then n=$((n + 1)); fi; done; }`,
    `if [ -d "$d" ]; then echo exists=yes; pgprov_count "$d"; echo "entries=$n"; fi`,
    `[ -f "$d/PG_VERSION" ] && read -r v < "$d/PG_VERSION" && echo "pg_version=$v"`,
    `[ -f "$d/standby.signal" ] && echo standby_signal=yes`,
    // Read as postgres: root follows no link that postgres could plant there.
    `[ -f "$d/${FENCE_MARKER}" ] && echo "fenced=$(runuser -u postgres -- head -c 300 -- "$d/${FENCE_MARKER}" | LC_ALL=C tr -cd '[:print:]')"`,
    `m=${shellQuote(rewindMark(dataDirectory))}; [ -f "$m" ] && [ ! -L "$m" ] && echo "rewind_unfinished=$(head -c 300 -- "$m" | LC_ALL=C tr -cd '[:print:]')"`,
    `[ -d "$d${CLONE_SUFFIX}" ] && echo partial_clone=yes`,
    `[ -e "$d${REPLACED_SUFFIX}" ] && echo replaced_left=yes`,
    `[ -f "$d/postmaster.pid" ] && read -r pid < "$d/postmaster.pid" && kill -0 "$pid" 2>/dev/null && echo running=yes`,
    `c=`,
    `if [ -f "$d/global/pg_control" ] && [ -x ${bin}/pg_controldata ]; then`,
    // Its lines split by the shell itself (no awk): "Name:   value".
    `  pgprov_ifs=$IFS; IFS='\n'; set -f`,
    `  for l in $(LC_ALL=C ${bin}/pg_controldata "$d"); do`,
    `    v=\${l#*:}; v=\${v#"\${v%%[! ]*}"}`,
    `    case $l in`,
    `      "Database system identifier:"*) c="\${c}system_identifier=$v\n" ;;`,
    `      "Database cluster state:"*) c="\${c}state=$v\n" ;;`,
    `      "Latest checkpoint"?"s TimeLineID:"*) c="\${c}timeline=$v\n" ;;`,
    `      "Latest checkpoint"?"s NextOID:"*) c="\${c}next_oid=$v\n" ;;`,
    `      "Latest checkpoint location:"*) c="\${c}checkpoint_lsn=$v\n" ;;`,
    `    esac`,
    `  done`,
    `  IFS=$pgprov_ifs; set +f`,
    `  printf %s "$c"`,
    `fi`,
    // A promotion writes NNNNNNNN.history at once; pg_control's timeline waits for a checkpoint.
    // The glob sorts, and eight hex digits sort as numbers do: the last one is the latest.
    `h=; for f in "$d"/pg_wal/[0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F].history; do [ -f "$f" ] && h=\${f##*/}; done`,
    `[ -n "$h" ] && echo "history_timeline=$((0x\${h%.history}))" && echo "history=$(awk '/^[0-9]/ { printf "%s %s;", $1, $2 }' "$d/pg_wal/$h")"`,
    `[ -d "$d/pg_tblspc" ] && pgprov_count "$d/pg_tblspc" && echo "tablespaces=$n"`,
    `if [ -d "$d/base" ]; then`,
    `  n=0; for f in "$d"/base/*; do if [ -e "$f" ] || [ -L "$f" ]; then n=$((n + 1)); fi; done; echo "databases=$n"`,
    // Relation files of user objects matter only to tell a freshly made cluster, whose NextOID is
    // still below ${FIRST_USER_OID} (see isFreshCluster): above it, none is counted, and a large
    // database costs no walk of its files.
    `  o=\${c##*next_oid=}; o=\${o%%[!0-9]*}`,
    `  if [ -z "$c" ] || [ -z "$o" ] || [ "$o" -lt ${FIRST_USER_OID} ]; then`,
    `    echo "user_relations=$(find "$d/base" -type f -name '[0-9]*' | awk -F/ '{ n = $NF; sub(/[._].*/, "", n); if (n + 0 >= ${FIRST_USER_OID}) c++ } END { print c + 0 }')"`,
    `  fi`,
    `fi`,
  ].join("\n");
}

export function parseDataDirectory(stdout: string): DataDirectory {
  const kv = keyValues(stdout);
  const number = (v: string | undefined) => (v === undefined || v === "" ? undefined : Number(v));
  return {
    exists: kv.exists === "yes",
    entries: number(kv.entries) ?? 0,
    ...(kv.pg_version ? { majorVersion: Number(kv.pg_version) } : {}),
    ...(kv.system_identifier ? { systemIdentifier: kv.system_identifier } : {}),
    ...(kv.state ? { state: kv.state } : {}),
    ...(kv.timeline || kv.history_timeline ? { timeline: Math.max(Number(kv.timeline ?? 0), Number(kv.history_timeline ?? 0)) } : {}),
    standbySignal: kv.standby_signal === "yes",
    running: kv.running === "yes",
    partialClone: kv.partial_clone === "yes",
    replacedLeft: kv.replaced_left === "yes",
    userDatabases: Math.max(0, (number(kv.databases) ?? 3) - 3),
    userRelations: number(kv.user_relations) ?? 0,
    tablespaces: number(kv.tablespaces) ?? 0,
    ...(kv.next_oid ? { nextOid: Number(kv.next_oid) } : {}),
    ...(kv.checkpoint_lsn ? { checkpointLsn: kv.checkpoint_lsn } : {}),
    ...(kv.history !== undefined ? { history: parseTimelineHistory(kv.history.replaceAll(";", "\n")) } : {}),
    ...(kv.fenced !== undefined ? { fenced: kv.fenced || "no details" } : {}),
    ...(kv.rewind_unfinished !== undefined ? { rewindUnfinished: kv.rewind_unfinished || "no details" } : {}),
  };
}

/**
 * A cluster that initdb (or the Debian package) just made: nothing in it anyone could miss. Every
 * sign must agree: still on timeline 1, no tablespace, no database or relation file of a user
 * object, and no user object ever made (OIDs from 16384 on are handed out to user objects,
 * large objects included, and pg_control's NextOID has stayed below that).
 */
export function isFreshCluster(d: DataDirectory): boolean {
  return (
    d.systemIdentifier !== undefined &&
    d.timeline === 1 &&
    d.tablespaces === 0 &&
    d.userDatabases === 0 &&
    d.userRelations === 0 &&
    d.nextOid !== undefined &&
    d.nextOid < FIRST_USER_OID
  );
}

/** Running and accepting writes: a server that is not in recovery. */
export function isWritable(d: DataDirectory): boolean {
  return d.running && !d.standbySignal && d.state === "in production";
}

/** pg_control's states of a server that last ran as a primary (recovery has states of its own). */
const PRIMARY_STATES = new Set(["in production", "shut down", "shutting down", "in crash recovery"]);

/**
 * It accepted writes: it accepts them now, or pg_control says it last ran as a primary (a
 * standby.signal written since does not change what it wrote).
 */
export function wasWritable(d: DataDirectory): boolean {
  return isWritable(d) || (d.state !== undefined && PRIMARY_STATES.has(d.state));
}
