/** Every task module, by the key a playbook task uses for it. */
import { apt } from "./apt.js";
import { command } from "./command.js";
import { file } from "./file.js";
import type { Module } from "../engine/module.js";
import { service } from "./service.js";
import { template } from "./template.js";
import { pgControl, pgDataDirectory, pgReplication } from "../postgres/read.js";
import { pgRestartPending } from "../postgres/restart.js";
import { pgRole } from "../postgres/role.js";
import { pgSlots } from "../postgres/slots.js";
import { pgStandby } from "../postgres/standby.js";

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
  pg_data_directory: pgDataDirectory,
  pg_replication: pgReplication,
  pg_control: pgControl,
};
