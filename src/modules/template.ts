/**
 * template: a file whose content is a Handlebars template (from templates/), rendered with the
 * host's variables exactly like playbook values, then managed like any `file`.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import { file, fileArgs } from "./file.js";
import type { Module } from "../engine/module.js";

export const templateArgs = fileArgs.omit({ content: true }).extend({
  /** The template file, relative to the playbook's directory. */
  src: z.string().min(1),
});
type TemplateArgs = z.output<typeof templateArgs> & { content?: string };

const sources = new Map<string, string>();

export const template: Module<TemplateArgs> = {
  name: "template",
  args: templateArgs,
  prepare(args, context) {
    const path = resolve(context.playbookDir, args.src);
    let text = sources.get(path);
    if (text === undefined) {
      text = readFileSync(path, "utf8");
      sources.set(path, text);
    }
    return { ...args, content: context.render(text, args.src) };
  },
  probe: file.probe,
  decide: file.decide,
};
