/**
 * The bundled playbook's snapshot (see snapshotPlaybook in src/playbook/playbook.ts), made when
 * the bundle is built: scripts/build.mjs replaces this module. Undefined when pgprov runs from
 * its sources (the tests): the playbook is then loaded from its file, as any other.
 */
import type { PlaybookSnapshot } from "../playbook/playbook.js";

export const BUNDLED_SNAPSHOT: PlaybookSnapshot | undefined = undefined;
