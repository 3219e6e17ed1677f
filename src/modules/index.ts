/** The generic task modules, by the key a playbook task uses for each. */
import type { Module } from "../engine/module.js";
import { type AptOptions, aptModule } from "./apt.js";
import { command } from "./command.js";
import { file } from "./file.js";
import { service } from "./service.js";
import { template } from "./template.js";

export function genericModules(options: { apt?: AptOptions } = {}): Record<string, Module> {
  return { apt: aptModule(options.apt), file, template, service, command };
}
