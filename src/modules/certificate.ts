/**
 * tls_certificate: a server's certificate from the cluster's CA, with its key made on the host
 * and never leaving it. Renewal is drift: a certificate that is missing, expires within
 * `renew_days`, lacks a name of `names`, names another, was not signed by the CA, or whose key is
 * gone is issued again. Issuing takes two extra round trips (the host makes a key and a signing
 * request; pgprov signs it here, where the CA key stays; the host installs the certificate with
 * its new key), but checking takes none of its own: the probe prints the certificate (never a
 * key), and the verdict is the control machine's (tls/check.ts).
 *
 * A certificate issued elsewhere (`certificate` and `private_key`, from the inventory) is
 * installed as given; the inventory checked it before anything connected.
 *
 * The module knows no PostgreSQL: the playbook gives it paths and owners, and notifies the
 * server's reload.
 */
import { z } from "zod";
import { absolutePath, flag, wholeNumber } from "../common/args.js";
import { type Change, noChange } from "../engine/change.js";
import { type Module, TaskFailure } from "../engine/module.js";
import {
  type CertificateAuthority,
  type CertificateProbe,
  certificateProbeScript,
  checkCertificate,
  type HostKeyFiles,
  installCertificateScript,
  installGivenKeyScript,
  makeKeyAndCsrScript,
  parseCertificateProbe,
  sanNames,
  signCsr,
} from "../tls/index.js";

const account = z.string().regex(/^[a-z_][a-z0-9_-]*\$?$/i, "a user or group name");

export const certificateArgs = z.strictObject({
  /** The certificate's path on the host (mode 0644). */
  cert: absolutePath,
  /** Its key's path (mode 0600, owned by `owner`). */
  key: absolutePath,
  owner: account,
  group: account.optional(),
  /** The names and addresses the certificate is for (its subjectAltName): exactly these. */
  names: z.array(z.string().min(1)).min(1),
  /** Whose certificate, for messages: the host's name. */
  host: z.string().min(1),
  days: wholeNumber.default(365),
  renew_days: wholeNumber.default(30),
  /** Also for TLS clients (clientAuth): pgBackRest's servers authenticate their clients by certificate. */
  client_auth: flag.default(false),
  /**
   * Each IP address of `names` also as a DNS name of the SAN: pgBackRest 2.45 matches the address
   * it dials against the SAN's DNS names only (and ignores the CN once a SAN exists).
   */
  address_as_dns_name: flag.default(false),
  /** A certificate issued elsewhere, as PEM, with its key: installed as given. */
  certificate: z.string().default(""),
  private_key: z.string().default(""),
});
export type CertificateArgs = z.output<typeof certificateArgs>;

/** `authority` is asked when a task decides: the run may make the CA after the playbook loaded. */
export function tlsCertificate(authority: () => CertificateAuthority | undefined): Module<CertificateArgs> {
  return {
    name: "tls_certificate",
    args: certificateArgs,

    probe: (args) => certificateProbeScript(filesOf(args)),

    decide(args, state) {
      const files = filesOf(args);
      const probe = parseCertificateProbe(state.stdout);
      const label = `the certificate of ${args.host} (${args.cert})`;
      const badKey = keyProblem(args, probe, label);

      if (args.certificate) {
        if (!args.private_key) throw new TaskFailure(`${label}: a certificate issued elsewhere needs its key (private_key)`);
        if (probe.certPem === args.certificate && probe.key === "present" && !badKey) return noChange(`${label} is the one the inventory gives`);
        return {
          changes: [
            {
              action: probe.cert === "missing" ? "create" : "update",
              summary: `install ${label} and its key as the inventory gives them (tls.certificates)`,
              commands: [
                { script: installGivenKeyScript(files, args.private_key), display: `put the key the inventory gives beside ${args.cert}` },
                { script: installCertificateScript(files, args.certificate), display: `install ${label}` },
              ],
            },
          ],
        };
      }

      const ca = authority();
      if (!ca) throw new TaskFailure(`${label}: no certificate authority for this run (TLS is off in the inventory)`);
      const given = sanNames(args.names);
      const names = args.address_as_dns_name ? { ...given, dnsNames: [...given.dnsNames, ...given.ipAddresses] } : given;
      const verdict = checkCertificate(probe.certPem, {
        ca,
        expectedNames: names,
        renewWithinDays: args.renew_days,
        label,
        clientAuth: args.client_auth,
        ...(probe.key === "missing" ? { keyPublicPem: null } : {}),
      });
      if (verdict.ok && !badKey) return noChange(verdict.message);
      const why = [...(verdict.ok ? [] : verdict.reasons.map((r) => r.message)), ...(badKey ? [badKey] : [])].join("; ");
      if (!verdict.ok && verdict.caExpiresSoon && !badKey) {
        // A new certificate cannot outlive its CA: issuing again on every run would not help.
        return noChange(`WARNING: ${why}; it ends with the CA (${ca.label}) on ${verdict.caExpiresSoon.toISOString().slice(0, 10)}: renew the CA`);
      }
      if (!ca.canSign) throw new TaskFailure(`${why}; pgprov has no key for the CA ${ca.label} (tls.ca.key) to issue another: give one in tls.certificates`);
      const commonName = names.dnsNames[0] ?? "server";
      const change: Change = {
        action: probe.cert === "missing" ? "create" : "update",
        summary: `issue a certificate for ${args.names.join(", ")}, signed by the cluster's CA: ${why}`,
        commands: [
          {
            script: makeKeyAndCsrScript(files, commonName),
            display: `make a new key beside ${args.key} and a signing request for it, on ${args.host}`,
            next: async (csr) => {
              const certPem = await signCsr(ca, csr, { ...names, days: args.days, host: args.host, clientAuth: args.client_auth });
              return [{ script: installCertificateScript(files, certPem), display: `install the new certificate of ${args.host} (${args.cert}) with its new key` }];
            },
          },
        ],
      };
      return { changes: [change] };
    },
  };
}

function filesOf(args: CertificateArgs): HostKeyFiles {
  return { certFile: args.cert, keyFile: args.key, owner: args.owner, ...(args.group ? { group: args.group } : {}) };
}

/**
 * A present key with another mode or owner than the server needs (PostgreSQL refuses a key others
 * can read). Not put right by chmod: the key's directory may belong to the server's user, who
 * could put a link there; a new key is made instead, in a file only root has touched.
 */
function keyProblem(args: CertificateArgs, probe: CertificateProbe, label: string): string | undefined {
  // A killed renewal's temporary files may hold a key: the next renewal removes them first.
  if (probe.leftovers) return `an interrupted renewal left ${probe.leftovers.join(", ")} beside ${label}`;
  const group = args.group ?? args.owner;
  if (probe.key !== "present" || (probe.keyMode === "600" && probe.keyOwner === args.owner && probe.keyGroup === group)) return undefined;
  return `the key of ${label} has mode ${probe.keyMode ?? "?"} and owner ${probe.keyOwner ?? "?"}:${probe.keyGroup ?? "?"}, not 600 ${args.owner}:${group}`;
}
