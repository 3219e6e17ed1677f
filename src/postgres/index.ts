/** PostgreSQL's task modules, bound to the port of the cluster's servers. */
import { pgSettingOverrides } from "./overrides.js";
import { psql } from "./psql.js";
import { pgControl, pgDataDirectory, pgReplication } from "./read.js";
import { pgRestartPending } from "./restart.js";
import { pgRole, pgRoles } from "./role.js";
import { pgDatabases } from "./databases.js";
import { pgPoolerLookup, pgPoolerRoleRetired } from "./pooler.js";
import { pgSlots } from "./slots.js";
import { pgStandby } from "./standby.js";

export function postgresModules(options: { port: number }) {
  const sql = psql(options.port);
  return {
    pg_role: pgRole(sql),
    pg_roles: pgRoles(sql),
    pg_databases: pgDatabases(sql),
    pg_pooler_lookup: pgPoolerLookup(sql),
    pg_pooler_role_retired: pgPoolerRoleRetired(sql),
    pg_slots: pgSlots(sql),
    pg_standby: pgStandby,
    pg_restart_pending: pgRestartPending(sql),
    pg_setting_overrides: pgSettingOverrides(sql),
    pg_data_directory: pgDataDirectory,
    pg_replication: pgReplication(sql),
    pg_control: pgControl(sql),
  };
}

export type PostgresModules = ReturnType<typeof postgresModules>;
