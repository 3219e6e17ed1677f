/**
 * Templates compiled when the bundle is built, by their text: scripts/build.mjs replaces this
 * module with the bundled playbook's (scripts/precompile-templates.mjs). Empty when pgprov runs
 * from its sources (the tests): every template is then compiled on first use.
 */
export const PRECOMPILED: ReadonlyMap<string, TemplateSpecification> = new Map();
