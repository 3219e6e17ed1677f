import { writeFileSync } from "node:fs";
import { PgprovError } from "../common/errors.js";
import { loadInventoryWarning } from "./inventory.js";
import { print } from "./print.js";

/** `pgprov ca INVENTORY [--out FILE]`: the CA's certificate (public) for clients; never its key. */
export function caCommand(inventoryPath: string, out: string | undefined): number {
  const inventory = loadInventoryWarning(inventoryPath);
  if (!inventory.tls.enabled) throw new PgprovError(`TLS is off in ${inventory.file} (tls.enabled: false): the cluster has no CA`);
  const ca = inventory.tls.authority;
  if (!ca) throw new PgprovError(`the cluster has no CA yet (${inventory.tls.caFiles.cert}): \`pgprov apply ${inventoryPath}\` makes it`);
  if (out === undefined) {
    print(ca.certPem);
    return 0;
  }
  try {
    writeFileSync(out, ca.certPem, { mode: 0o644, flag: "wx" });
  } catch (e) {
    throw new PgprovError(`cannot write ${out} (${(e as NodeJS.ErrnoException).code}); pgprov never writes over an existing file`);
  }
  return 0;
}
