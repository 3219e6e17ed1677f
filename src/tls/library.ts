/**
 * The X.509 library, loaded only on the paths that make or sign a certificate (a new CA, a
 * signing request to sign): loading it costs about three times what yaml and zod together do,
 * and a no-op run must not pay for it. Checking a certificate needs none of it (see check.ts).
 * See index.ts for why this library.
 */
import { webcrypto } from "node:crypto";

type X509 = typeof import("@peculiar/x509");

let loading: Promise<X509> | undefined;

export function x509(): Promise<X509> {
  loading ??= (async () => {
    // @peculiar/x509 registers its algorithms with tsyringe, which needs the Reflect metadata API
    // installed before the library's first line runs.
    await import("reflect-metadata");
    const module = await import("@peculiar/x509");
    // In the bundle (esbuild, platform node) it is the library's CommonJS build, whose exports
    // arrive as `default`; under node's own ESM loader, as named exports.
    const lib = ("cryptoProvider" in module ? module : (module as unknown as { default: X509 }).default) as X509;
    // Node's own WebCrypto (OpenSSL underneath): the library only encodes and decodes; every
    // key generation, signature and verification is Node's.
    lib.cryptoProvider.set(webcrypto as unknown as Crypto);
    return lib;
  })();
  return loading;
}

/** PEM as files hold it: LF line ends and a final newline (the library gives neither for sure). */
export function pemText(pem: string): string {
  return `${pem.replace(/\r\n/g, "\n").trimEnd()}\n`;
}
