/** Every task module, by the key a playbook task uses for it. */
import { apt } from "./apt.js";
import { command } from "./command.js";
import { file } from "./file.js";
import type { Module } from "./module.js";
import { service } from "./service.js";
import { template } from "./template.js";

export const MODULES: Readonly<Record<string, Module>> = { apt, file, template, service, command };
