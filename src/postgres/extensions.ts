/**
 * The extensions pgprov knows: those of PostgreSQL's own contrib (in Debian's postgresql-N
 * package), and a few packaged by Debian on their own, with the package that brings them. An
 * extension whose library must be loaded at server start adds itself to shared_preload_libraries.
 */

export interface KnownExtension {
  /** The Debian package that brings it, "{version}" for the server's major version; none: contrib. */
  package?: string;
  /** Its library must be in shared_preload_libraries (the server restarts to load it). */
  preload?: boolean;
  /** A library only (auto_explain): loaded, never CREATE EXTENSION'd. */
  libraryOnly?: boolean;
}

const CONTRIB = [
  "adminpack", "amcheck", "autoinc", "bloom", "btree_gin", "btree_gist", "citext", "cube", "dblink", "dict_int", "dict_xsyn",
  "earthdistance", "file_fdw", "fuzzystrmatch", "hstore", "insert_username", "intagg", "intarray", "isn", "lo", "ltree",
  "moddatetime", "old_snapshot", "pageinspect", "pg_buffercache", "pg_freespacemap", "pg_prewarm", "pg_surgery", "pg_trgm",
  "pg_visibility", "pg_walinspect", "pgcrypto", "pgrowlocks", "pgstattuple", "plpgsql", "postgres_fdw", "refint", "seg",
  "sslinfo", "tablefunc", "tcn", "tsm_system_rows", "tsm_system_time", "unaccent", "uuid-ossp", "xml2",
];

export const KNOWN_EXTENSIONS: Record<string, KnownExtension> = {
  ...Object.fromEntries(CONTRIB.map((name) => [name, {}])),
  pg_stat_statements: { preload: true },
  auto_explain: { preload: true, libraryOnly: true },
  plperl: { package: "postgresql-plperl-{version}" },
  plpython3u: { package: "postgresql-plpython3-{version}" },
  pltcl: { package: "postgresql-pltcl-{version}" },
  postgis: { package: "postgresql-{version}-postgis-3" },
  pg_cron: { package: "postgresql-{version}-cron", preload: true },
  pgaudit: { package: "postgresql-{version}-pgaudit", preload: true },
  pg_repack: { package: "postgresql-{version}-repack" },
  pg_partman: { package: "postgresql-{version}-partman" },
  hypopg: { package: "postgresql-{version}-hypopg" },
  orafce: { package: "postgresql-{version}-orafce" },
  vector: { package: "postgresql-{version}-pgvector" },
};

/** The Debian package an extension needs for a server version (contrib: the server's own). */
export function extensionPackage(name: string, version: number | string): string {
  return (KNOWN_EXTENSIONS[name]?.package ?? "postgresql-{version}").replace("{version}", String(version));
}

/** The libraries to preload for these extensions, in order, each once. */
export function preloadLibraries(extensions: Iterable<string>): string[] {
  return [...new Set([...extensions].filter((e) => KNOWN_EXTENSIONS[e]?.preload))];
}
