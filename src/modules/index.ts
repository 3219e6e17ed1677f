/** Every task module, by the key a playbook task uses for it. */
import { apt } from "./apt.js";
import { command } from "./command.js";
import { file } from "./file.js";
import type { Module } from "./module.js";
import { service } from "./service.js";
import { template } from "./template.js";
import { pgControl, pgDataDirectory, pgReplication } from "./pg/read.js";
import { pgSettingOverrides } from "./pg/overrides.js";
import { pgRestartPending } from "./pg/restart.js";
import { pgRole } from "./pg/role.js";
import { pgSlots } from "./pg/slots.js";
import { pgStandby } from "./pg/standby.js";

export const MODULES: Readonly<Record<string, Module>> = {
  apt,
  file,
  template,
  service,
  command,
  pg_role: pgRole,
  pg_slots: pgSlots,
  pg_standby: pgStandby,
  pg_restart_pending: pgRestartPending,
  pg_setting_overrides: pgSettingOverrides,
  pg_data_directory: pgDataDirectory,
  pg_replication: pgReplication,
  pg_control: pgControl,
};
